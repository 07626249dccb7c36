//! kxdp's network functions layer: the chain classifier and the functions
//! (policy, policer, load balancer, counter, mirror, external VNF hop) that
//! the dataplane's chain executor runs. Sans-IO like the pipeline: no
//! sockets, no clocks, no threads.
