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

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_reported_on_linux() {
        let rss = super::peak_rss_bytes().expect("/proc/self/status has VmHWM");
        assert!(rss > 1 << 20, "{rss}");
    }
}
