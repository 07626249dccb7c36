//! AF_XDP sockets: UMEM, fill/completion/rx/tx rings. (AF_XDP work item.)
