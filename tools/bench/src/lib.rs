//! `gongji-tools`: a generator of realistic synthetic regions (`gongji-gen`),
//! the benchmark of issue 6 (`gongji-bench`) and issue 16's on PostgreSQL
//! (`gongji-pg-bench`: apply, COPY and replay; with `--queries`, whole-process
//! queries on PostgreSQL projections against the file log).
//!
//! **What it is for.** Producing reproducible command files for `gongji apply`
//! (a seeded region: members, families, contributions, monthly allocations,
//! claims, account payments, reversals) and measuring the ledger against
//! baselines run on the same machine in the same run (a plain file, sled,
//! PostgreSQL when a server is reachable). See `docs/performance.md`.
//!
//! **What it is not for.** It holds no insurance rule: what a command does is
//! decided by `gongji`; the generator only aims to produce commands a real
//! region would send, most of which are accepted.

pub mod gen;
pub mod plant;
pub mod rng;
