//! Replays every fuzz seed and every input a fuzzer once crashed on (`fuzz/seeds/TARGET`,
//! `fuzz/regressions/TARGET`) through the same cases the fuzz targets run.

#[path = "../fuzz/cases.rs"]
mod cases;

use std::path::Path;

fn replay(target: &str, case: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut count = 0;
    for folder in ["seeds", "regressions"] {
        let dir = root.join(folder).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).expect("input reads");
            case(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn command_inputs_never_panic() {
    assert!(
        replay("command", cases::command) > 0,
        "the command seeds are there"
    );
    // A few hostile lines of our own, beyond the seeds.
    for line in [
        "",
        "{",
        "null",
        "[]",
        r#"{"cmd":"claim"}"#,
        &"9".repeat(100_000),
        r#"{"cmd":"enroll","member":"\u0000"}"#,
    ] {
        cases::command(line.as_bytes());
    }
}

#[test]
fn event_inputs_never_panic() {
    replay("event_decode", cases::event_decode);
    for bytes in [
        &[][..],
        &[1],
        &[1, 0],
        &[1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f],
        &[9; 64],
    ] {
        cases::event_decode(bytes);
    }
}

#[test]
fn detail_file_inputs_never_panic() {
    assert!(
        replay("csv_detail", cases::csv_detail) > 0,
        "the csv seeds are there"
    );
    for bytes in [
        &b""[..],
        b"\xef\xbb\xbf",
        b"setl_id\n\"unterminated",
        b"\x84\x31\x95\x33\xff\xfe\n,,,\n",
    ] {
        cases::csv_detail(bytes);
    }
}

#[test]
fn archive_inputs_never_panic() {
    assert!(
        replay("archive", cases::archive) > 0,
        "the archive seeds are there"
    );
    for bytes in [
        &b""[..],
        b"\n",
        b"{}\n",
        b"{\"archive\":\"gongji\",\"format\":1,\"filter\":{},\"complete\":true}\n{\"manifest\":{}}\n",
        b"\xff\xfe\n",
    ] {
        cases::archive(bytes);
    }
}
