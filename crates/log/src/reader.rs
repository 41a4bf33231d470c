//! Opening a log to read beside its writer: [`Log::open_read_only`].
//!
//! A reader takes no lock and writes nothing: no torn tail is cut, no index run, projection
//! or durable end file is written (one exception, as for every finder of damage: a damaged
//! durable record found by `verify` or a read is remembered in `DIR/QUARANTINE`, so that the
//! writer's next open refuses). It sees the log up to a durable end, the greatest of:
//! * the durable end the writer published in `DIR/DURABLE_END` (`durable_end`), written only
//!   after an `fdatasync`;
//! * the end of the stream index's runs, written only from durable records.
//!
//! Both are checked against the segments (the record they name is there, with their hash),
//! and the scan to that end must find every frame whole. So a reader never sees a record that
//! a crash could lose — not even a killed writer's bytes that reached the page cache but no
//! `fdatasync` (they appear once the next writer's open has synced them). With no durable end
//! published (a log no writer of this version wrote) or one the segments do not match
//! (damage), the reader scans to the end of the complete units as recovery would, cutting
//! nothing, so that damage is named (`Corrupt`) rather than hidden behind a shorter log.
//!
//! The projection store is the runs store as the writer left it, read before the durable
//! end (so its checkpoint, stored only after its records were durable and published, is
//! never beyond it), under a layer in memory (`kv::overlay`): the projection layer folds
//! the records after the checkpoint into the layer. With `--projections sled` too: sled
//! locks its directory, so a reader never opens it and reads the runs store (each store
//! keeps its own checkpoint; one without any is folded from the start, in memory).
//!
//! A reader follows its writer with [`Log::refresh_read_only`]: it reads the durable end
//! published now and scans from its own end to it, exactly as the open scans (every frame
//! whole, the chain continued, the scan ending at the published record with its hash), the new
//! records indexed in memory only; it lists the segments again for the ones the writer started
//! since. What it holds in memory grows with each refresh ([`Log::index_tail_records`]); the
//! caller opens a fresh reader past a bound of its own.
//!
//! Files replaced while a reader opens: a run deleted by the writer's merge between a
//! listing (or the manifest) and its open makes the reader list again (bounded); once
//! open, a run stays readable through its handle. The manifest is replaced by a rename,
//! so it is always whole. A rebuild clearing the store leaves a manifest without a
//! checkpoint: the reader then folds from the start.

use std::path::Path;

use crate::index::IndexMeta;
use crate::kv::overlay::{self, OverlayKv};
use crate::open::{validate_meta, Opened, INDEX_DIR, PROJECTIONS_DIR, SEGMENTS_DIR, STREAMS_DIR};
use crate::recovery::{self, ScanTo};
use crate::streams::{StreamIndex, StreamTable};
use crate::{
    durable_end, files, quarantine, segment, Handover, Kv, Log, LogError, LogOptions, OpenReport,
};

impl Log {
    /// Opens the log in `dir` for reading beside its writer (see the module documentation):
    /// no lock, nothing written, reads up to a durable end. Refuses a directory with no log
    /// (`segments` missing) and a quarantined log, as [`Log::open_with`] does. Every append,
    /// sync with records, index flush and projection write on it is refused with
    /// [`LogError::ReadOnly`] (projection writes land in memory).
    pub fn open_read_only(dir: &Path, options: LogOptions) -> Result<Log, LogError> {
        files::refuse_links_in(dir)?;
        if let Some(marker) = quarantine::read(dir)? {
            return Err(quarantine::refusal(dir, marker));
        }
        let segments_dir = dir.join(SEGMENTS_DIR);
        let index_dir = dir.join(INDEX_DIR);
        // As at the writer's open: no link inside `index` is followed (a reader only reads,
        // but what it reads must be the log's own).
        match files::refuse_links_in(&index_dir) {
            Err(e) if files::is_not_found(&e) => {}
            refused => refused?,
        }
        // The store first: its checkpoint is then never beyond the durable end read after it.
        let base = overlay::open_base(&index_dir.join(PROJECTIONS_DIR))?;
        let published = durable_end::read(dir)?;
        let mut segments = segment::list_segments(&segments_dir)?;
        let mut validate = |meta: &IndexMeta| validate_meta(meta, &segments, &segments_dir);
        let mut stream_index =
            StreamIndex::open_read_only(&index_dir.join(STREAMS_DIR), &mut validate)?;
        let runs_meta = stream_index.runs_meta();
        let to = scan_target(published, runs_meta, &segments, &segments_dir)?;
        if let ScanTo::Durable(end) = to {
            segments.retain(|&s| s <= end.segment);
        }
        let recovered = recovery::recover(
            &mut stream_index,
            None,
            &segments,
            &segments_dir,
            (
                runs_meta.unwrap_or_else(IndexMeta::empty),
                runs_meta.is_some(),
            ),
            to,
        )
        .map_err(|e| quarantine::remember_damage(dir, e, "open_read_only", false))?;
        let end = recovered.committed;
        if let ScanTo::Durable(durable) = to {
            check_reached(&end, &durable, &segments_dir)?;
        }
        segments.retain(|&s| s <= end.segment);
        // A store ahead of the durable end (its checkpoint outlived a durable end file a crash
        // set back) cannot be folded onto: the reader folds from the start instead.
        let base = base.filter(|b| b.checkpoint().is_none_or(|c| c <= end.next_position));
        let report = OpenReport {
            records_indexed: recovered.records_indexed,
            ..OpenReport::default()
        };
        Ok(Opened {
            dir,
            options,
            db: None,
            stream_index,
            streams: StreamTable::default(),
            kv: Kv::overlay(OverlayKv::new(base)),
            segments,
            writer: None,
            committed: end,
            publisher: None,
            report,
            lock: None,
        }
        .into_log())
    }

    /// Whether this log was opened by [`Log::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Brings a log opened read-only up to the durable end its writer published in
    /// `DIR/DURABLE_END` now (read when this is called), scanning only the records after its
    /// own end: each is checked (CRC, position, hash chain) and indexed in memory as the open's
    /// scan does, and the scan must end exactly at the published end. Returns the durable
    /// end. Nothing is written. A log with no durable end published, or one it cannot read
    /// (torn by a crash), stays where it is; a writer's log is always at its durable end and
    /// is returned as it is.
    ///
    /// On damage (`Corrupt`, remembered in `DIR/QUARANTINE`) the log may have indexed part of
    /// the way: it is marked broken and refuses everything; drop it and open again.
    pub fn refresh_read_only(&mut self) -> Result<u64, LogError> {
        self.check_usable()?;
        if !self.read_only {
            return Ok(self.durable_end);
        }
        let Some(published) = durable_end::read(&self.dir)? else {
            return Ok(self.durable_end);
        };
        if published.next_position <= self.durable_end {
            return Ok(self.durable_end);
        }
        self.take_handed(published)?;
        if published.next_position <= self.durable_end {
            return Ok(self.durable_end);
        }
        let scanned = self.scan_to(published);
        if let Err(error) = &scanned {
            self.broken = Some(format!(
                "reading the records made durable since failed: {error}"
            ));
        }
        let end = scanned?;
        self.segments.retain(|&s| s <= end.segment);
        self.reached(end);
        Ok(self.durable_end)
    }

    /// Shares `handover` with this log: a writer hands every durable batch's index entries
    /// to it, a reader's refresh takes them from it instead of scanning those records (see
    /// `handover`). For logs of one directory in one process (the server's writer and view).
    pub fn share_handover(&mut self, handover: std::sync::Arc<Handover>) {
        self.handover = Some(handover);
    }

    /// Records this reader indexed from its handover since its open (the rest it scanned).
    pub fn handed_records(&self) -> u64 {
        self.handed_records
    }

    /// A reader: indexes the batches its writer handed over from its end up to `published`.
    fn take_handed(&mut self, published: IndexMeta) -> Result<(), LogError> {
        let Some(handover) = self.handover.clone() else {
            return Ok(());
        };
        for batch in handover.take(self.durable_end, published.next_position) {
            for entry in batch.entries.iter() {
                self.stream_index.push(*entry, batch.segment);
            }
            if self.segments.last().is_none_or(|&s| s < batch.segment) {
                self.segments.push(batch.segment);
            }
            self.handed_records += batch.entries.len() as u64;
            self.reached(batch.end);
        }
        if self.durable_end == published.next_position && self.durable_hash != published.last_hash {
            let error = LogError::Index(format!(
                "the entries handed over end at position {} with another hash than the \
                 published durable end",
                self.durable_end
            ));
            self.broken = Some(error.to_string());
            return Err(error);
        }
        Ok(())
    }

    /// A reader's ends once it indexed up to `end`.
    fn reached(&mut self, end: IndexMeta) {
        self.durable_end = end.next_position;
        self.submitted_end = end.next_position;
        self.durable_hash = end.last_hash;
        self.last_record = (end.segment, end.last_record_offset_bytes);
        self.last_record_end_bytes = end.end_offset_bytes;
        self.writer_segment = end.segment;
        self.writer_offset_bytes = end.end_offset_bytes;
    }

    /// Scans from this reader's end to `published`, indexing in memory; where it ended.
    fn scan_to(&mut self, published: IndexMeta) -> Result<IndexMeta, LogError> {
        let mut segments = segment::list_segments(&self.segments_dir)?;
        segments.retain(|&s| s <= published.segment);
        let start = self.index_meta();
        let recovered = recovery::recover(
            &mut self.stream_index,
            None,
            &segments,
            &self.segments_dir,
            (start, true),
            ScanTo::Durable(published),
        )
        .map_err(|e| self.remember_damage(e, "refresh_read_only"))?;
        check_reached(&recovered.committed, &published, &self.segments_dir)?;
        self.segments = segments;
        Ok(recovered.committed)
    }

    /// Index entries a reader holds in memory (the records after the stream index's runs):
    /// what a refresh adds to.
    pub fn index_tail_records(&self) -> usize {
        self.stream_index.tail.len()
    }
}

/// Where a reader's scan goes: to the greater of the published durable end and the index
/// runs' end, if a durable end is published and matches the segments; else (a log no writer of
/// this version wrote, or a durable end the segments do not match: damage, which the scan then
/// names) to the end of the complete units, as the writer's recovery would.
fn scan_target(
    published: Option<IndexMeta>,
    runs_meta: Option<IndexMeta>,
    segments: &[u64],
    segments_dir: &Path,
) -> Result<ScanTo, LogError> {
    let published = match published {
        Some(p) if p.next_position == 0 => Some(p),
        Some(p) => validate_meta(&p, segments, segments_dir)?.ok().map(|()| p),
        None => None,
    };
    Ok(match published {
        Some(p) => ScanTo::Durable(match runs_meta {
            Some(runs) if runs.next_position > p.next_position => runs,
            _ => p,
        }),
        None => ScanTo::LastSegment { flush_runs: false },
    })
}

/// The scan must end exactly at the durable end it was given: anything else is damage.
fn check_reached(
    reached: &IndexMeta,
    end: &IndexMeta,
    segments_dir: &Path,
) -> Result<(), LogError> {
    if reached.next_position == end.next_position && reached.last_hash == end.last_hash {
        return Ok(());
    }
    Err(LogError::Corrupt {
        position: reached.next_position,
        segment: segment::segment_path(segments_dir, end.segment),
        offset: reached.end_offset_bytes,
        reason: format!(
            "the segments' complete records end at position {}, but {} records were made \
             durable",
            reached.next_position, end.next_position
        ),
    })
}
