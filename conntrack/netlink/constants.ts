/**
 * ctnetlink numbers, checked against linux include/uapi/linux/netfilter/nfnetlink.h,
 * nfnetlink_conntrack.h and nf_conntrack_common.h (kernel 6.x) and net/netfilter/nf_internals.h
 * for the CTA_FILTER flag bits, which the kernel does not export but treats as ABI
 * (libnetfilter_conntrack uses the same values).
 */

/** socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER). */
export const NETLINK_NETFILTER = 12;

// Generic netlink message types and flags (linux/netlink.h).
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
/** Set by the kernel on dump messages when the table changed under the dump (seen as EINTR). */
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** Nested-attribute and network-byte-order bits of nla_type. */
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const NLMSG_HDRLEN = 16;
export const NFGENMSG_LEN = 4;
export const NFNETLINK_V0 = 0;

// Subsystem and message types: type = subsys << 8 | msg.
export const NFNL_SUBSYS_CTNETLINK = 1;
export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;

export const AF_INET = 2;
export const AF_INET6 = 10;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

// enum ctattr_type
export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_STATUS = 3;
export const CTA_PROTOINFO = 4;
export const CTA_TIMEOUT = 7;
export const CTA_MARK = 8;
export const CTA_ID = 12;
export const CTA_ZONE = 18;
export const CTA_FILTER = 25;

// enum ctattr_tuple
export const CTA_TUPLE_IP = 1;
export const CTA_TUPLE_PROTO = 2;
export const CTA_TUPLE_ZONE = 3;

// enum ctattr_ip
export const CTA_IP_V4_SRC = 1;
export const CTA_IP_V4_DST = 2;
export const CTA_IP_V6_SRC = 3;
export const CTA_IP_V6_DST = 4;

// enum ctattr_l4proto
export const CTA_PROTO_NUM = 1;
export const CTA_PROTO_SRC_PORT = 2;
export const CTA_PROTO_DST_PORT = 3;

// enum ctattr_filter
export const CTA_FILTER_ORIG_FLAGS = 1;
export const CTA_FILTER_REPLY_FLAGS = 2;
/** nf_internals.h: CTA_FILTER_F_CTA_PROTO_NUM, "match on the L4 protocol number". */
export const CTA_FILTER_F_CTA_PROTO_NUM = 1 << 3;

// Connection status bits (nf_conntrack_common.h), for callers that read `status`.
export const IPS_EXPECTED = 1 << 0;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;

// errno values seen on this path.
export const EINTR = 4;
export const ENOENT = 2;
export const EEXIST = 17;
export const ENOBUFS = 105;
export const ETIMEDOUT = 110;
export const EBADF = 9;
export const EINVAL = 22;
