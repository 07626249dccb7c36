//! The XDP program kxdp loads itself through bpf(2). (AF_XDP work item.)
