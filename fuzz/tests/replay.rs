//! Replays every committed seed and regression input through its target on
//! the stable toolchain (no libFuzzer needed), and writes the seed corpus
//! anew when `PUSHDEX_FUZZ_WRITE_SEEDS=1`.

use std::fs;
use std::path::Path;

/// A target: its name, and the function its fuzz target calls.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 4] = [
    ("log_frames", pushdex_fuzz::log_frames),
    ("segment", pushdex_fuzz::segment),
    ("manifest", pushdex_fuzz::manifest),
    ("ops", pushdex_fuzz::ops),
];

/// Seeds must stay small: the corpus is committed.
const MAX_SEED_BYTES: usize = 64 * 1024;

#[test]
fn seeds_and_regressions_replay() {
    if std::env::var_os("PUSHDEX_FUZZ_WRITE_SEEDS").is_some() {
        for (target, name, bytes) in pushdex_fuzz::seeds::seeds() {
            assert!(bytes.len() < MAX_SEED_BYTES, "seed {target}/{name} is {} bytes", bytes.len());
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut ran = 0;
    for (target, run) in TARGETS {
        for kind in ["seeds", "regressions"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind).join(target);
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths {
                eprintln!("{}", path.display());
                run(&fs::read(&path).unwrap());
                ran += 1;
            }
        }
    }
    assert!(ran > 0, "no seed found");
}

#[test]
fn seeds_decode_to_operations() {
    for (target, name, bytes) in pushdex_fuzz::seeds::seeds() {
        if target == "ops" {
            let ops = pushdex_fuzz::ops::decode(&bytes);
            assert!(!ops.is_empty(), "seed {name} decodes to no operation");
        }
    }
}
