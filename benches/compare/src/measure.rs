//! What the kernel knows about this process: peak resident set, bytes
//! written to storage, and the blocks a directory occupies.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Resets the peak resident set (VmHWM) to the current one, so that the next
/// reading is the peak of what runs in between (Linux ≥ 4.0).
pub fn reset_peak_rss() {
    // Without the reset the reading is the process's peak so far: still true,
    // only coarser. Nothing to do about a failure but say it once.
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| eprintln!("warning: cannot reset VmHWM; peak RSS is cumulative"));
    }
}

/// The peak resident set since the last reset, in bytes.
pub fn peak_rss() -> u64 {
    status_kb("VmHWM:").unwrap_or(0) * 1024
}

/// The anonymous part of the resident set now (heap, stacks: no mapped
/// files), in bytes. The kernel keeps no peak of it: [`with_anon_peak`] samples.
pub fn rss_anon() -> u64 {
    status_kb("RssAnon:").unwrap_or(0) * 1024
}

/// Samples [`rss_anon`] every 10 ms while a closure runs.
pub fn with_anon_peak<T>(f: impl FnOnce() -> T) -> (T, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(rss_anon());
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
        let out = f();
        stop.store(true, Ordering::Relaxed);
        out
    });
    peak.fetch_max(rss_anon(), Ordering::Relaxed);
    (out, peak.into_inner())
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Bytes this process caused to be sent to storage (`write_bytes` of
/// /proc/self/io: every thread, counted when a page is dirtied).
pub fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| io.lines().find_map(|l| l.strip_prefix("write_bytes:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// The space a directory (or file) occupies: allocated blocks, so sparse
/// files and preallocated tails count for what they really take.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = path.symlink_metadata() else { return 0 };
    if meta.is_dir() {
        std::fs::read_dir(path).map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum()).unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

/// True when `path` is on a memory file system (tmpfs, ramfs), where fsync
/// costs nothing and a comparison of durable commits means nothing.
pub fn on_memory_fs(path: &Path) -> bool {
    use std::ffi::CString;
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated path and `buf` a properly sized,
    // writable statfs that outlives the call.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return false;
    }
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let kind = buf.f_type as i64;
    kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
}
