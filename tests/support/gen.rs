//! A small seeded generator of realistic command streams for the end-to-end tests.

use serde_json::json;

/// xorshift64*: deterministic, dependency-free randomness for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An amount between 0.00 and `max_yuan`.00, as a decimal string.
    pub fn amount(&mut self, max_yuan: u64) -> String {
        yuan(self.below(max_yuan * 100 + 1))
    }
}

/// Whole fen as a decimal yuan string.
pub fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// One region's year: enrolments, monthly contributions and allocations, claims, family
/// bindings and payments, reversals. Every command has a natural key (member, month, id), so
/// re-applying the stream applies nothing twice.
pub fn region_year(seed: u64, members: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut lines = Vec::new();
    let schemes = [
        "employer",
        "employer",
        "employer",
        "individual_tier1",
        "individual_tier2",
    ];
    let mut retired = Vec::new();
    for m in 0..members {
        let old = rng.below(4) == 0;
        let born = if old {
            format!("{}-{:02}-15", 1950 + rng.below(10), 1 + rng.below(12))
        } else {
            format!("{}-{:02}-01", 1965 + rng.below(35), 1 + rng.below(12))
        };
        let scheme = schemes[rng.below(schemes.len() as u64) as usize];
        retired.push(old);
        lines.push(json!({"cmd":"enroll","member":format!("M{m:05}"),"region":"500000","born":born,"status":if old {"retired"} else {"active"},"scheme":scheme,"date":"2024-01-01","opening_balance":rng.amount(800)}).to_string());
    }
    let mut ids = 0u64;
    let mut settled: Vec<String> = Vec::new();
    for month in 1..=12u32 {
        lines.push(
            json!({"cmd":"allocate","region":"500000","month":format!("2024-{month:02}")})
                .to_string(),
        );
        for (m, old) in retired.iter().enumerate() {
            let member = format!("M{m:05}");
            if !old {
                let base = format!("{}.00", 3000 + rng.below(20000));
                lines.push(json!({"cmd":"contribute","member":member,"month":format!("2024-{month:02}"),"base":base}).to_string());
            }
            if rng.below(3) == 0 {
                ids += 1;
                let id = format!("C{ids:07}");
                let day = 1 + rng.below(28);
                let channel =
                    ["institution", "institution", "pharmacy", "manual"][rng.below(4) as usize];
                let special_fen = if rng.below(10) == 0 {
                    rng.below(30_001)
                } else {
                    0
                };
                let eligible_fen = special_fen + rng.below(150_000);
                let (special, eligible) = (yuan(special_fen), yuan(eligible_fen));
                lines.push(json!({"cmd":"claim","id":id,"member":member,"date":format!("2024-{month:02}-{day:02}"),"level":1 + rng.below(3),"channel":channel,"eligible":eligible,"special_paid":special,"uncovered":rng.amount(50),"use_account":rng.below(5) != 0,"institution":format!("H{}", rng.below(20)),"visit":format!("V{ids}")}).to_string());
                settled.push(id);
            }
            if month == 2 && rng.below(4) == 0 {
                lines.push(json!({"cmd":"bind_family","holder":member,"relative":format!("R{m:05}"),"relation":"child","date":"2024-02-01"}).to_string());
            }
            if rng.below(6) == 0 {
                ids += 1;
                let id = format!("P{ids:07}");
                let beneficiary = if rng.below(2) == 0 {
                    member.clone()
                } else {
                    format!("R{m:05}")
                };
                lines.push(json!({"cmd":"account_pay","id":id,"holder":member,"beneficiary":beneficiary,"date":format!("2024-{month:02}-28"),"purpose":"pharmacy","amount":rng.amount(200)}).to_string());
                settled.push(id);
            }
        }
        if !settled.is_empty() {
            for _ in 0..3 {
                let id = &settled[rng.below(settled.len() as u64) as usize];
                lines.push(json!({"cmd":"reverse","id":id,"date":format!("2024-{month:02}-28"),"reason":"test reversal"}).to_string());
            }
        }
    }
    lines
}
