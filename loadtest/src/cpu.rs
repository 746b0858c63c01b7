//! A process's CPU time, read from Linux's `/proc/PID/stat`: how the load
//! tester and the benchmarks measure what a server spent.

use std::process::Command;

/// CPU seconds of process `pid` (`self` for this one): its own utime+stime,
/// or with `children`, the cutime+cstime of the children it reaped.
/// `None` when the process or `/proc` is not there.
pub fn cpu_seconds(pid: &str, children: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, cutime field 16.
    let first = if children { 16 } else { 14 };
    let ticks =
        fields.get(first - 3)?.parse::<f64>().ok()? + fields.get(first - 2)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_spent_some_cpu_and_nothing_is_read_of_no_process() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds("self", false).is_some_and(|s| s > 0.0));
        assert_eq!(cpu_seconds("not-a-pid", false), None);
    }
}
