"""macOS's own protocol statistics, under the names Linux's /proc/net/snmp gives them.

xnu keeps UDP statistics in one `struct udpstat` (bsd/netinet/udp_var.h) that
`sysctl net.inet.udp.stats` returns; udp6_input counts into the same structure
(`#define udp6stat udpstat`), so the IPv6 names below read the same counters.
"""

from __future__ import annotations

import ctypes
import struct

# struct udpstat, in order: 22 u_int32_t (bsd/netinet/udp_var.h).
UDPSTAT_FIELDS = (
    "udps_ipackets", "udps_hdrops", "udps_badsum", "udps_badlen", "udps_noport",
    "udps_noportbcast", "udps_fullsock", "udpps_pcbcachemiss", "udpps_pcbhashmiss",
    "udps_opackets", "udps_fastout", "udps_nosum", "udps_noportmcast", "udps_filtermcast",
    "udps_rcv_swcsum", "udps_rcv_swcsum_bytes", "udps_rcv6_swcsum",
    "udps_rcv6_swcsum_bytes", "udps_snd_swcsum", "udps_snd_swcsum_bytes",
    "udps_snd6_swcsum", "udps_snd6_swcsum_bytes",
)
# The /proc/net/snmp names the chapter tests read, and the udpstat field behind each.
_AS_LINUX_NAMES = {
    "Udp.InCsumErrors": "udps_badsum", "6.Udp6InCsumErrors": "udps_badsum",
    "Udp.NoPorts": "udps_noport", "6.Udp6NoPorts": "udps_noport",
    "Udp.RcvbufErrors": "udps_fullsock", "6.Udp6RcvbufErrors": "udps_fullsock",
    "Udp.OutDatagrams": "udps_opackets", "6.Udp6OutDatagrams": "udps_opackets",
}


def sysctlbyname(name: str, size: int) -> bytes | None:
    """The value of sysctl `name` (at most `size` bytes), or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the process runs on
        call = libc.sysctlbyname
    except (OSError, AttributeError):
        return None  # not a BSD libc (Linux's has no sysctlbyname)
    buffer = ctypes.create_string_buffer(size)
    length = ctypes.c_size_t(size)
    if call(name.encode(), buffer, ctypes.byref(length), None, ctypes.c_size_t(0)) != 0:
        return None
    return buffer.raw[:length.value]


def sysctl_counters() -> dict[str, int]:
    """UDP counters from sysctl net.inet.udp.stats: every udpstat field under
    "udpstat.NAME", and the Linux names above; {} when the sysctl cannot be read."""
    size = 4 * len(UDPSTAT_FIELDS)
    data = sysctlbyname("net.inet.udp.stats", size)
    if data is None or len(data) < size:
        return {}
    values = dict(zip(UDPSTAT_FIELDS, struct.unpack(f"@{len(UDPSTAT_FIELDS)}I", data[:size]),
                      strict=True))
    counters = {f"udpstat.{name}": value for name, value in values.items()}
    counters.update({linux: values[field] for linux, field in _AS_LINUX_NAMES.items()})
    return counters
