//! What the process uses, as the kernel reports it (Linux `/proc`).

/// Peak resident set size of this process in bytes (`VmHWM`), if the kernel tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The most malloc arenas glibc may create for the C and C++ libraries (RocksDB and
/// librdkafka allocate through it; Rust code uses mimalloc). glibc's default, eight per
/// core, let their threads' freed buffers pile up in arenas of their own: working off a
/// backlog, the process held about 120 MiB more (BENCHMARKS.md), at the same speed.
pub const C_ALLOCATOR_ARENAS: i32 = 2;

/// The arena limit to set: none when the operator chose one with `MALLOC_ARENA_MAX`
/// (glibc has applied it already).
pub fn arena_limit(malloc_arena_max: Option<&std::ffi::OsStr>) -> Option<i32> {
    match malloc_arena_max {
        Some(_) => None,
        None => Some(C_ALLOCATOR_ARENAS),
    }
}

/// Applies [`arena_limit`] to glibc's allocator. Call first thing in `main`, before any
/// thread starts (an arena is bound to a thread when it first allocates).
pub fn limit_c_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(limit) = arena_limit(std::env::var_os("MALLOC_ARENA_MAX").as_deref()) {
        // SAFETY: mallopt only changes a tunable of glibc's allocator; no thread of ours
        // runs yet, and glibc takes its own lock for it.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn the_arena_limit_is_ours_unless_the_operator_set_one() {
        assert_eq!(super::arena_limit(None), Some(super::C_ALLOCATOR_ARENAS));
        assert_eq!(super::arena_limit(Some(OsStr::new("8"))), None);
        // An empty value is still the operator's choice: glibc ignores it, and so do we.
        assert_eq!(super::arena_limit(Some(OsStr::new(""))), None);
    }

    #[test]
    fn peak_rss_is_reported_on_linux() {
        let rss = super::peak_rss_bytes().expect("/proc/self/status has VmHWM");
        assert!(rss > 1 << 20, "{rss}");
    }
}
