#!/usr/bin/env python3
"""Groups a flat `perf report --no-children --sort dso,symbol -g none --stdio`
of the SFU into the table of bench/results/sfu-profile.md: webrtc-rs symbols by
crate, kernel symbols by subsystem, ours apart.

    perf report -i perf.data --no-children --sort dso,symbol --stdio -g none \
      | grep '%' | grep -v '^#' > flat.txt
    bench/profile-groups.py flat.txt
"""
import re,sys
groups=[
 ("SRTP encryption (AES-GCM with AES-NI)", r"aes|seal_in_place|RingAead|gcm|ghash"),
 ("webrtc-rs interceptors: NACK responder and send buffer, TWCC, congestion control, reports", r"^\S+\s+\[\.\]\s+<?rtc_interceptor"),
 ("Switchboard's own packet path (forwarder, downtrack rewrite)", r"\[\.\]\s+<?switchboard_"),
 ("hash maps (per-packet lookups, SipHash)", r"hashbrown|sip::Hasher"),
 ("async runtime, locks and channels (tokio, `futures`, event listeners, bounded queues)", r"\[\.\]\s+<?(tokio::|futures_util|futures_channel|event_listener|concurrent_queue|async_channel|async_broadcast|parking_lot|crossbeam|core::ptr::drop_in_place<tokio)"),
 ("webrtc-rs's `rtc` state machine and the `webrtc` driver around it (handler chain, `flush_writes`, RTP sender, driver event loop)", r"rtc::|webrtc::|rtc_|sansio"),
 ("`memmove`/`memcmp`: copies of each packet", r"memmove|memcpy|memcmp|memset"),
 ("`malloc` and `free`", r"malloc|cfree|free@|_int_free|_int_malloc|realloc"),
 ("kernel: task switches, wakeups, futexes, epoll, timers", r"\[k\].*(task_switch|schedule|futex|wake|epoll|ep_poll|hrtimer|_raw_spin_unlock_irq|update_curr|dequeue|enqueue|sched|pick_next|tick|clock|timerqueue|switch_mm|__switch_to)"),
 ("kernel: UDP send and receive", r"\[k\].*(udp|ip_|sock|skb|inet|__dev|dev_|net_|fib_|nf_|loopback|ipv4|netif|sendmsg|recvmsg|__ip|napi|neigh|dst_|copy_from_iter|_copy_to_iter|csum|validate_xmit)"),
 ("kernel: other (syscall entry and exit, file lookups)", r"\[k\]"),
]
tot={g:0.0 for g,_ in groups}; rest=0.0
for line in open(sys.argv[1]):
    m=re.match(r"\s*([\d.]+)%\s+(.*)",line)
    if not m: continue
    pct=float(m.group(1)); s=m.group(2)
    for g,pat in groups:
        if re.search(pat,s):
            tot[g]+=pct;break
    else:
        rest+=pct
for g,_ in sorted(groups,key=lambda x:-tot[x[0]]): print(f"| {tot[g]:.1f}% | {g} |")
print(f"| {rest:.1f}% | the rest (libc, std, many symbols under 0.3%) |")
