//! A Kubernetes cluster in network namespaces: two kxdp nodes with host
//! ports, programmed only by their Kubernetes agents from the test API
//! server with real Kubernetes objects (Nodes, Namespaces, Pods with the
//! CNI plugin's annotations, Services and EndpointSlices, NetworkPolicies),
//! and what a cluster needs from its pod network, each a labelled check:
//!
//! - kubelet: each node GETs a pod's HTTP port; node ↔ pod ping; a pod
//!   pings its gateway;
//! - cluster DNS: dnsmasq in a `kube-dns` pod on n2 behind ClusterIP
//!   10.96.0.10 (UDP and TCP 53), queried with `dig` from a pod on n1;
//! - the `kubernetes` Service (10.96.0.1:443) over hostNetwork HTTPS
//!   servers on both nodes (`openssl s_server` on 6443);
//! - a Service with three backends on both nodes, from pods on both nodes
//!   and from a node's own namespace, spread over the backends; its
//!   NodePort from a client outside the cluster at each node's address;
//! - egress: a pod reaches a server "on the internet" (203.0.113.10, a
//!   host on the fabric bridge) with its node's address as source;
//! - a second tenant's pod reaches none of the nodes, the Services or
//!   egress (and does reach its own tenant's pod);
//! - NetworkPolicy: a default-deny ingress policy on a backend lets its
//!   own node's probe through and refuses the rest, directly, through its
//!   ClusterIP and through a NodePort;
//! - nothing left behind: the host port's link, routes and nftables table
//!   once kxdp stops; namespaces, links and XDP programs once the testbed
//!   goes.
//!
//! The nodes have IPv6 on the interfaces created after the build (the
//! host port), as a stock node has; a separate test gives a host port to
//! a node without IPv6. Another, ignored until kxdp passes it, connects
//! to a ClusterIP and then straight to the backend that served it from
//! the same client port (kxdp's load balancer still translates the
//! backend's replies for the closed connection).
//!
//! It prints the figures the issue asks for: node → pod probe latency
//! (HTTP GET on a new connection, as the kubelet probes) and pod →
//! ClusterIP request/response latency, p50/p99 over 200 requests.
//!
//! Privileged (root, iproute2, and curl, dig, dnsmasq, openssl, nft from
//! `scripts/setup`): skipped with a message outside CI without them, fails
//! in CI. Run: `cargo test -p kxdp-tests --test cluster -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kxdp_config::Protocol;
use kxdp_control::api::{api_socket_path, ApiTarget, BlockingClient, ObjectKind};
use kxdp_testbed::{
    find_program, gateway_ip, http_get, http_rtt, http_server, ping, pod_ip, privileged_test,
    tcp_echo_server, tcp_rtt_with, vtep_ip, EchoServer, HttpReply, HttpServer, Netns, NetnsProcess,
    NodeKind, NodeSpec, RttOptions, RttResult, TopologySpec, Underlay, HOST_IF, HOST_PEER,
};
use kxdp_tests::apiserver::{BlockingApiServer, TestApiServer};
use kxdp_tests::forwarder::NetnsForwarder;
use kxdp_tests::{eventually, kxdp_binary, xdp_links, Cluster};
use serde_json::{json, Value};

const NODES: [&str; 2] = ["n1", "n2"];
const BLUE: &str = "blue";
const RED: &str = "red";

/// The `kubernetes` Service (the API server, on the nodes' addresses).
const KUBERNETES_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
const API_PORT: u16 = 6443;
/// Cluster DNS.
const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const DNS_NAME: &str = "web.default.svc.cluster.local";
/// The three-backend Service.
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const WEB_NODE_PORT: u16 = 30080;
/// The Service over the backend a NetworkPolicy locks.
const LOCKED_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);
const LOCKED_NODE_PORT: u16 = 30090;
/// Backends' HTTP port (Service port 80).
const HTTP_PORT: u16 = 8080;
/// Backends' TCP echo port (Service port 7), for request/response latency.
const ECHO_PORT: u16 = 7007;
const ECHO_SERVICE_PORT: u16 = 7;
const ECHO_NODE_PORT: u16 = 30007;

/// Outside the cluster, on the fabric bridge.
const EXTERNAL_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 50);
const INTERNET_HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 200);
const INTERNET_SERVER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const INTERNET_PORT: u16 = 8000;

/// How long a request that must be answered may take; what must be
/// refused gets the same time to (not) answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A pod of the cluster: testbed pod and Kubernetes Pod alike.
struct PodDef {
    name: &'static str,
    node: &'static str,
    namespace: &'static str,
    /// Host octet of its address in its node's pod CIDR.
    host: u8,
    labels: &'static [(&'static str, &'static str)],
}

const PODS: &[PodDef] = &[
    PodDef {
        name: "client-1",
        node: "n1",
        namespace: "default",
        host: 10,
        labels: &[("app", "client")],
    },
    PodDef {
        name: "web-1",
        node: "n1",
        namespace: "default",
        host: 20,
        labels: &[("app", "web")],
    },
    PodDef {
        name: "red-1",
        node: "n1",
        namespace: "red",
        host: 30,
        labels: &[("app", "red")],
    },
    PodDef {
        name: "red-2",
        node: "n1",
        namespace: "red",
        host: 31,
        labels: &[("app", "red")],
    },
    PodDef {
        name: "client-2",
        node: "n2",
        namespace: "default",
        host: 10,
        labels: &[("app", "client")],
    },
    PodDef {
        name: "web-2",
        node: "n2",
        namespace: "default",
        host: 20,
        labels: &[("app", "web")],
    },
    PodDef {
        name: "web-3",
        node: "n2",
        namespace: "default",
        host: 21,
        labels: &[("app", "web")],
    },
    PodDef {
        name: "locked",
        node: "n2",
        namespace: "default",
        host: 40,
        labels: &[("app", "locked")],
    },
    PodDef {
        name: "kube-dns",
        node: "n2",
        namespace: "kube-system",
        host: 53,
        labels: &[("k8s-app", "kube-dns")],
    },
];

const WEB_BACKENDS: [&str; 3] = ["web-1", "web-2", "web-3"];

fn node_number(node: &str) -> u8 {
    NODES.iter().position(|n| *n == node).unwrap() as u8 + 1
}

fn pod_def(name: &str) -> &'static PodDef {
    PODS.iter().find(|p| p.name == name).unwrap()
}

fn address_of(name: &str) -> Ipv4Addr {
    let p = pod_def(name);
    pod_ip(node_number(p.node), p.host)
}

fn tenant_of(namespace: &str) -> &'static str {
    if namespace == "red" {
        RED
    } else {
        BLUE
    }
}

fn topology() -> TopologySpec {
    let mut spec = TopologySpec::new(Underlay::Switch, &[(BLUE, 100), (RED, 200)]);
    for node in NODES {
        let mut n = NodeSpec::new(node, NodeKind::Kxdp).with_host_port();
        for p in PODS.iter().filter(|p| p.node == node) {
            n = n.with_pod(p.name, tenant_of(p.namespace), address_of(p.name));
        }
        spec = spec.with_node(n);
    }
    spec
}

// ---- Kubernetes objects ------------------------------------------------

fn k8s_namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": labels}})
}

fn k8s_node(name: &str) -> Value {
    let n = node_number(name);
    let cidr = format!("10.244.{n}.0/24");
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": vtep_ip(n).to_string()},
            {"type": "Hostname", "address": name}
        ]}
    })
}

fn k8s_pod(cluster: &Cluster, def: &PodDef) -> Value {
    let pod = cluster.pod(def.name);
    let labels: serde_json::Map<String, Value> = def
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": def.name, "namespace": def.namespace, "labels": labels,
                     "annotations": {"kxdp.io/interface": pod.host_interface,
                                     "kxdp.io/mac": pod.mac.to_string()}},
        "spec": {"nodeName": def.node, "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": pod.ip.to_string(),
                   "podIPs": [{"ip": pod.ip.to_string()}]}
    })
}

/// A port of a Service: (name, protocol, port, target port, node port).
type ServicePort = (&'static str, &'static str, u16, u16, Option<u16>);

fn k8s_service(namespace: &str, name: &str, ip: Ipv4Addr, ports: &[ServicePort]) -> Value {
    let node_port = ports.iter().any(|p| p.4.is_some());
    let ports: Vec<Value> = ports
        .iter()
        .map(|(port_name, protocol, port, target, node_port)| {
            let mut p = json!({"name": port_name, "protocol": protocol, "port": port,
                               "targetPort": target});
            if let Some(np) = node_port {
                p["nodePort"] = json!(np);
            }
            p
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": if node_port { "NodePort" } else { "ClusterIP" },
                 "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                 "ports": ports}
    })
}

/// An EndpointSlice of Service `service`: its ports (name, protocol, port)
/// and endpoints (address, node, pod — none for a hostNetwork endpoint).
fn k8s_slice(
    namespace: &str,
    service: &str,
    ports: &[(&str, &str, u16)],
    endpoints: &[(Ipv4Addr, &str, Option<&str>)],
) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(name, protocol, port)| json!({"name": name, "protocol": protocol, "port": port}))
        .collect();
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node, pod)| {
            let mut e = json!({"addresses": [ip.to_string()], "nodeName": node,
                               "conditions": {"ready": true, "serving": true, "terminating": false}});
            if let Some(pod) = pod {
                e["targetRef"] = json!({"kind": "Pod", "namespace": namespace, "name": pod});
            }
            e
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints
    })
}

fn pod_endpoint(name: &'static str) -> (Ipv4Addr, &'static str, Option<&'static str>) {
    (address_of(name), pod_def(name).node, Some(name))
}

fn default_deny_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "locked-deny-ingress", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "locked"}},
                 "policyTypes": ["Ingress"]}
    })
}

/// The Services and how many endpoints each has, as the agents must
/// report them: (namespace, name, endpoints).
const SERVICES: [(&str, &str, usize); 4] = [
    ("default", "kubernetes", 2),
    ("kube-system", "kube-dns", 1),
    ("default", "web", 3),
    ("default", "locked", 1),
];

fn cluster_objects(cluster: &Cluster) -> Vec<Value> {
    let mut objects = vec![
        serde_yaml::from_str(&kxdp_config::crd::ServiceChain::crd_yaml()).unwrap(),
        k8s_namespace("default", json!({})),
        k8s_namespace("kube-system", json!({})),
        k8s_namespace(RED, json!({"kxdp.io/tenant": RED})),
    ];
    objects.extend(NODES.iter().map(|n| k8s_node(n)));
    objects.extend(PODS.iter().map(|p| k8s_pod(cluster, p)));
    objects.push(k8s_service(
        "default",
        "kubernetes",
        KUBERNETES_IP,
        &[("https", "TCP", 443, API_PORT, None)],
    ));
    objects.push(k8s_slice(
        "default",
        "kubernetes",
        &[("https", "TCP", API_PORT)],
        &[(vtep_ip(1), "n1", None), (vtep_ip(2), "n2", None)],
    ));
    objects.push(k8s_service(
        "kube-system",
        "kube-dns",
        DNS_IP,
        &[
            ("dns", "UDP", 53, 53, None),
            ("dns-tcp", "TCP", 53, 53, None),
        ],
    ));
    objects.push(k8s_slice(
        "kube-system",
        "kube-dns",
        &[("dns", "UDP", 53), ("dns-tcp", "TCP", 53)],
        &[pod_endpoint("kube-dns")],
    ));
    objects.push(k8s_service(
        "default",
        "web",
        WEB_IP,
        &[
            ("http", "TCP", 80, HTTP_PORT, Some(WEB_NODE_PORT)),
            (
                "echo",
                "TCP",
                ECHO_SERVICE_PORT,
                ECHO_PORT,
                Some(ECHO_NODE_PORT),
            ),
        ],
    ));
    objects.push(k8s_slice(
        "default",
        "web",
        &[("http", "TCP", HTTP_PORT), ("echo", "TCP", ECHO_PORT)],
        &WEB_BACKENDS.map(pod_endpoint),
    ));
    objects.push(k8s_service(
        "default",
        "locked",
        LOCKED_IP,
        &[("http", "TCP", 80, HTTP_PORT, Some(LOCKED_NODE_PORT))],
    ));
    objects.push(k8s_slice(
        "default",
        "locked",
        &[("http", "TCP", HTTP_PORT)],
        &[pod_endpoint("locked")],
    ));
    objects
}

// ---- The cluster under test ---------------------------------------------

/// Everything the test runs. Dropped field by field in this order: the
/// workloads (processes inside the namespaces) first, the testbed last.
struct ClusterUnderTest {
    processes: Vec<NetnsProcess>,
    http: BTreeMap<String, HttpServer>,
    echo: Vec<EchoServer>,
    forwarders: Vec<NetnsForwarder>,
    server: BlockingApiServer,
    cluster: Cluster,
}

impl ClusterUnderTest {
    /// Build the testbed, the API server's objects, start kxdp with its
    /// agent on both nodes, wait until both agents converged, and start
    /// the workloads.
    fn start(test: &str) -> ClusterUnderTest {
        let mut cluster = Cluster::build(test, topology(), kxdp_binary!());
        let tb = cluster.tb_mut();
        tb.add_fabric_host("client", EXTERNAL_CLIENT_IP, &[])
            .unwrap_or_else(|e| panic!("{test}: the external client: {e}"));
        tb.add_fabric_host("internet", INTERNET_HOST_IP, &[INTERNET_SERVER_IP])
            .unwrap_or_else(|e| panic!("{test}: the internet host: {e}"));
        for node in NODES {
            tb.route_via_fabric_host(node, "203.0.113.0/24", "internet")
                .unwrap_or_else(|e| panic!("{test}: a route to the internet on {node}: {e}"));
        }

        let server = TestApiServer::start_blocking().unwrap();
        // Applied: the server has its own `default` namespace already.
        for object in cluster_objects(&cluster) {
            server
                .store()
                .apply_object(object.clone())
                .unwrap_or_else(|e| panic!("{test}: creating {object}: {e:?}"));
        }
        let mut forwarders = Vec::new();
        for node in NODES {
            let forwarder = NetnsForwarder::start(&cluster.node(node).netns, server.address())
                .unwrap_or_else(|e| panic!("{test}: forwarder into {node}: {e}"));
            let kubeconfig = cluster
                .tb()
                .scratch_dir()
                .join(format!("{node}.kubeconfig"));
            std::fs::write(
                &kubeconfig,
                server.kubeconfig().replace(
                    &server.url(),
                    &format!("http://127.0.0.1:{}", forwarder.port()),
                ),
            )
            .unwrap();
            forwarders.push(forwarder);
            cluster.start_kxdp_with(node, &["--kubeconfig", kubeconfig.to_str().unwrap()]);
        }
        let mut under_test = ClusterUnderTest {
            processes: Vec::new(),
            http: BTreeMap::new(),
            echo: Vec::new(),
            forwarders,
            server,
            cluster,
        };
        under_test.wait_converged(test);
        under_test.start_workloads(test);
        under_test
    }

    fn tb(&self) -> &kxdp_testbed::Testbed {
        self.cluster.tb()
    }

    fn pod_ns(&self, pod: &str) -> Netns {
        self.cluster.pod(pod).netns.clone()
    }

    fn node_ns(&self, node: &str) -> Netns {
        self.cluster.node(node).netns.clone()
    }

    fn fabric_ns(&self, host: &str) -> Netns {
        self.tb().fabric_host(host).unwrap().netns.clone()
    }

    fn api(&self, node: &str) -> BlockingClient {
        let config = self.tb().node_config(node).unwrap();
        BlockingClient::connect(&ApiTarget::Unix(api_socket_path(config))).unwrap()
    }

    /// What `node`'s agent has not (yet) programmed, empty once it holds
    /// the cluster: the other node with its address, its own pods, every
    /// Service with its endpoints.
    fn missing(&self, node: &str) -> Vec<String> {
        let mut missing = Vec::new();
        let (_, set) = match self.api(node).list(&[
            ObjectKind::RemoteNode,
            ObjectKind::Pod,
            ObjectKind::Service,
        ]) {
            Ok(listed) => listed,
            Err(e) => return vec![format!("API: {}", kxdp_node::report::Report(&e))],
        };
        for other in NODES.iter().filter(|n| **n != node) {
            let ip = IpAddr::V4(vtep_ip(node_number(other)));
            if !set
                .remote_nodes
                .iter()
                .any(|r| r.name == *other && r.node_ips.contains(&ip))
            {
                missing.push(format!("remote node {other} with node_ips [{ip}]"));
            }
        }
        let pods: BTreeSet<String> = set.pods.iter().map(|p| p.name.clone()).collect();
        for p in PODS.iter().filter(|p| p.node == node) {
            let name = format!("{}/{}", p.namespace, p.name);
            if !pods.contains(&name) {
                missing.push(format!("pod {name}"));
            }
        }
        for (namespace, name, endpoints) in SERVICES {
            let found = set
                .services
                .iter()
                .find(|s| s.name == name && s.namespace == namespace);
            match found {
                Some(s) if s.endpoints.len() == endpoints => {}
                Some(s) => missing.push(format!(
                    "service {namespace}/{name}: {} endpoints, not {endpoints}",
                    s.endpoints.len()
                )),
                None => missing.push(format!("service {namespace}/{name}")),
            }
        }
        missing
    }

    fn wait_converged(&self, test: &str) {
        let mut last = Vec::new();
        let converged = eventually(Duration::from_secs(60), || {
            last = NODES
                .iter()
                .flat_map(|n| {
                    self.missing(n)
                        .into_iter()
                        .map(move |m| format!("{n}: {m}"))
                })
                .collect();
            last.is_empty()
        });
        assert!(
            converged,
            "{test}: the agents did not converge in 60 s; missing {last:?}\n{}",
            self.cluster.logs()
        );
    }

    fn start_workloads(&mut self, test: &str) {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| -> ! { panic!("{test}: starting {what}: {e}") };
        // Backends: HTTP answering their name, TCP echo.
        for name in WEB_BACKENDS.iter().chain(["locked"].iter()) {
            let ns = self.pod_ns(name);
            let server = http_server(&ns, HTTP_PORT, HttpReply::Identity(name.to_string()))
                .unwrap_or_else(|e| fail(name, &e));
            self.http.insert(name.to_string(), server);
            self.echo
                .push(tcp_echo_server(&ns, ECHO_PORT).unwrap_or_else(|e| fail(name, &e)));
        }
        // The internet: tells each client the address it came from.
        let internet = http_server(
            &self.fabric_ns("internet"),
            INTERNET_PORT,
            HttpReply::ClientAddress,
        )
        .unwrap_or_else(|e| fail("the internet server", &e));
        self.http.insert("internet".into(), internet);
        // Cluster DNS in the kube-dns pod.
        let dns_ip = address_of("kube-dns").to_string();
        let mut dnsmasq = self
            .tb()
            .spawn_process(
                &self.pod_ns("kube-dns"),
                "kube-dns.dnsmasq",
                "dnsmasq",
                &[
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    &format!("--address=/{DNS_NAME}/{WEB_IP}"),
                    &format!("--listen-address={dns_ip}"),
                    "--bind-interfaces",
                    "--port=53",
                    "--log-facility=-",
                    "--pid-file",
                    "--user=root",
                ],
            )
            .unwrap_or_else(|e| fail("dnsmasq", &e));
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            dnsmasq
                .wait_listening(protocol, 53, Duration::from_secs(10))
                .unwrap_or_else(|e| fail("dnsmasq", &e));
        }
        self.processes.push(dnsmasq);
        // The API servers: hostNetwork HTTPS on each node, a certificate
        // each (CN kxdp-<node>, so a client sees which one answered).
        for node in NODES {
            let dir = self.tb().scratch_dir().to_path_buf();
            let (cert, key) = self_signed(&dir, &format!("kxdp-{node}"))
                .unwrap_or_else(|e| fail("a certificate", &e));
            let mut s_server = self
                .tb()
                .spawn_on_node(
                    node,
                    "apiserver",
                    "openssl",
                    &[
                        "s_server",
                        "-4",
                        "-quiet",
                        "-www",
                        "-accept",
                        &API_PORT.to_string(),
                        "-cert",
                        &cert,
                        "-key",
                        &key,
                    ],
                )
                .unwrap_or_else(|e| fail("openssl s_server", &e));
            s_server
                .wait_listening(Protocol::Tcp, API_PORT, Duration::from_secs(10))
                .unwrap_or_else(|e| fail("openssl s_server", &e));
            self.processes.push(s_server);
        }
    }

    /// Stop the workloads and kxdp, check that kxdp removed its host
    /// port (link, addresses, routes, nftables table) and its XDP
    /// programs from the nodes, then remove the testbed and check that
    /// nothing of it is left.
    fn finish(mut self, checks: &mut Checks) {
        for mut p in std::mem::take(&mut self.processes) {
            let _ = p.stop();
        }
        self.http.clear();
        self.echo.clear();
        for node in NODES {
            let status = self.cluster.process(node).terminate();
            checks.check(&format!("cleanup: kxdp on {node} stops"), || match status {
                Ok(Some(s)) if s.success() => Ok(format!("{s}")),
                Ok(other) => Err(format!("exit status {other:?}")),
                Err(e) => Err(e.to_string()),
            });
        }
        for node in NODES {
            let ns = self.node_ns(node);
            checks.check(
                &format!("cleanup: no host port, routes or nftables table left on {node}"),
                || host_port_leftovers(&ns),
            );
            checks.check(&format!("cleanup: no XDP program left on {node}"), || {
                let links = xdp_links(&ns);
                if links.is_empty() {
                    Ok("none attached".into())
                } else {
                    Err(format!("still attached: {links:?}"))
                }
            });
        }
        let ClusterUnderTest {
            forwarders,
            server,
            cluster,
            ..
        } = self;
        drop(forwarders);
        drop(server);
        // Namespaces, root links, the scratch directory, XDP programs
        // (by id, through bpftool): a leftover is a panic.
        let finished = catch_unwind(AssertUnwindSafe(|| cluster.finish()));
        checks.check(
            "cleanup: no namespace, link, scratch file or XDP program left after the testbed",
            || finished.map(|()| "none".to_string()).map_err(panic_text),
        );
    }
}

/// What kxdp's host port left in a node's namespace after kxdp stopped.
fn host_port_leftovers(ns: &Netns) -> Result<String, String> {
    let mut left = Vec::new();
    for link in [HOST_IF, HOST_PEER] {
        if ns.ip(&["link", "show", "dev", link]).is_ok() {
            left.push(format!("link {link}"));
        }
    }
    let routes = ns.ip(&["route", "show"]).map_err(|e| e.to_string())?;
    for line in routes.lines() {
        if line.contains(HOST_PEER) || line.starts_with("10.244.") || line.starts_with("10.96.") {
            left.push(format!("route {line:?}"));
        }
    }
    let addresses = ns.ip(&["-o", "addr", "show"]).map_err(|e| e.to_string())?;
    for line in addresses.lines().filter(|l| l.contains(" 10.244.")) {
        left.push(format!("address {line:?}"));
    }
    let neighbours = ns.ip(&["neigh", "show"]).map_err(|e| e.to_string())?;
    for line in neighbours.lines().filter(|l| l.contains("169.254.1.1")) {
        left.push(format!("neighbour {line:?}"));
    }
    match ns.exec_output("nft", &["list", "table", "inet", "kxdp"]) {
        Ok(out) if out.status.success() => left.push("nftables table inet kxdp".into()),
        Ok(_) => {}
        Err(e) => return Err(e.to_string()),
    }
    if left.is_empty() {
        Ok("no link, route, address, neighbour or table of kxdp's".into())
    } else {
        Err(format!("left behind: {left:?}"))
    }
}

/// A throwaway self-signed certificate for `cn` in `dir`: (cert, key) paths.
fn self_signed(dir: &Path, cn: &str) -> Result<(String, String), String> {
    let cert = dir.join(format!("{cn}.crt")).display().to_string();
    let key = dir.join(format!("{cn}.key")).display().to_string();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &cert,
        ])
        .output()
        .map_err(|e| format!("openssl req: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((cert, key))
}

// ---- Checks ----------------------------------------------------------------

/// Labelled checks: each runs (a panic inside one is its failure), prints
/// PASS or FAIL with what it saw, and the test fails at the end if any
/// failed, listing them.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, label: &str, f: impl FnOnce() -> Result<String, String>) {
        let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_text(p)));
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                println!("cluster: PASS {label}: {detail}");
            }
            Err(why) => {
                println!("cluster: FAIL {label}: {why}");
                self.failed.push(format!("{label}: {why}"));
            }
        }
    }

    fn assert_all_passed(&self, test: &str, logs: &str) {
        println!(
            "cluster: {} passed, {} failed",
            self.passed,
            self.failed.len()
        );
        assert!(
            self.failed.is_empty(),
            "{test}: {} check(s) failed:\n  {}\n{logs}",
            self.failed.len(),
            self.failed.join("\n  ")
        );
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".into()
    }
}

/// Run `program args…` in `ns`: its stdout, or why it failed.
fn run(ns: &Netns, program: &str, args: &[&str]) -> Result<(String, String), String> {
    let out = ns.exec_output(program, args).map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() {
        Ok((stdout, stderr))
    } else {
        Err(format!(
            "`{program} {}` in {}: {} — stdout {stdout:?}, stderr {stderr:?}",
            args.join(" "),
            ns.name(),
            out.status
        ))
    }
}

/// `curl` an HTTP URL from `ns`; the body.
fn curl(ns: &Netns, url: &str) -> Result<String, String> {
    let timeout = REQUEST_TIMEOUT.as_secs().to_string();
    run(ns, "curl", &["-sS", "--max-time", &timeout, url]).map(|(body, _)| body)
}

/// One GET from `ns` to `to` with our HTTP client: the backend's answer.
fn get(ns: &Netns, to: SocketAddr) -> Result<String, String> {
    let response = http_get(ns, to, REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!("HTTP {} from {to}", response.status));
    }
    Ok(response.body.trim().to_string())
}

/// `n` GETs from `ns` to `to`, each on a new connection: how many each
/// backend answered. Every one must be answered.
fn spread(ns: &Netns, to: SocketAddr, n: usize) -> Result<BTreeMap<String, usize>, String> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let who = get(ns, to).map_err(|e| {
            format!(
                "request {} of {n} from {}: {e}; answered so far {seen:?}",
                i + 1,
                ns.name()
            )
        })?;
        *seen.entry(who).or_insert(0) += 1;
    }
    Ok(seen)
}

/// `spread` that must reach every one of the web Service's backends.
fn spread_over_backends(ns: &Netns, to: SocketAddr, n: usize) -> Result<String, String> {
    let seen = spread(ns, to, n)?;
    let backends: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    if backends == BTreeSet::from(WEB_BACKENDS) {
        Ok(format!("{n} of {n} answered, by {seen:?}"))
    } else {
        Err(format!(
            "{n} answered, but by {seen:?}: not every backend of {WEB_BACKENDS:?}"
        ))
    }
}

/// A GET from `ns` to `to` that must not be answered.
fn refused(ns: &Netns, to: SocketAddr) -> Result<String, String> {
    match http_get(ns, to, REQUEST_TIMEOUT) {
        Ok(r) => Err(format!(
            "answered from {}: HTTP {} {:?}",
            ns.name(),
            r.status,
            r.body.trim()
        )),
        Err(e) => Ok(format!("no answer ({e})")),
    }
}

/// `count` pings from `ns` to `to`, every one answered.
fn pings(ns: &Netns, to: Ipv4Addr) -> Result<String, String> {
    let r = ping(ns, IpAddr::V4(to), 3, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    if r.received == r.sent && r.sent > 0 {
        Ok(format!(
            "{}/{} replies, p50 {}",
            r.received,
            r.sent,
            micros(r.p50())
        ))
    } else {
        Err(format!(
            "{} of {} echo requests answered",
            r.received, r.sent
        ))
    }
}

/// Pings from `ns` to `to`, none answered.
fn no_pings(ns: &Netns, to: Ipv4Addr) -> Result<String, String> {
    let r = ping(ns, IpAddr::V4(to), 3, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    if r.received == 0 {
        Ok(format!("0/{} replies", r.sent))
    } else {
        Err(format!(
            "{} of {} echo requests answered",
            r.received, r.sent
        ))
    }
}

/// `dig` the test name from `ns` at the cluster DNS over UDP or TCP.
fn dig(ns: &Netns, tcp: bool) -> Result<String, String> {
    let server = format!("@{DNS_IP}");
    let transport = if tcp { "+tcp" } else { "+notcp" };
    let (out, _) = run(
        ns,
        "dig",
        &[
            &server, transport, "+short", "+time=2", "+tries=1", DNS_NAME, "A",
        ],
    )?;
    if out == WEB_IP.to_string() {
        Ok(format!("{DNS_NAME} is {out}"))
    } else {
        Err(format!("{DNS_NAME}: dig said {out:?}, expected {WEB_IP}"))
    }
}

/// HTTPS GETs from `ns` to the `kubernetes` Service until both nodes'
/// API servers answered (at most 24): every one must succeed.
fn kubernetes_service(ns: &Netns) -> Result<String, String> {
    let url = format!("https://{KUBERNETES_IP}/");
    let timeout = REQUEST_TIMEOUT.as_secs().to_string();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..24 {
        let (code, log) = run(
            ns,
            "curl",
            &[
                "-k",
                "-sS",
                "-v",
                "--max-time",
                &timeout,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
        )
        .map_err(|e| format!("request {}: {e}; answered so far by {seen:?}", i + 1))?;
        if code != "200" {
            return Err(format!("request {}: HTTP {code}", i + 1));
        }
        let who = log
            .lines()
            .find_map(|l| {
                l.split_once("subject: CN=")
                    .map(|(_, cn)| cn.trim().to_string())
            })
            .unwrap_or_else(|| "?".into());
        *seen.entry(who).or_insert(0) += 1;
        if seen.contains_key("kxdp-n1") && seen.contains_key("kxdp-n2") {
            return Ok(format!("{} requests, answered by {seen:?}", i + 1));
        }
    }
    Err(format!(
        "24 requests answered, but only by {seen:?}: not both nodes"
    ))
}

fn micros(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} µs", d.as_secs_f64() * 1e6))
}

fn figures(what: &str, r: &RttResult) -> Result<String, String> {
    let line = format!(
        "{what}: p50 {} p99 {} (min {}, max {}) over {} of {} requests",
        micros(r.p50()),
        micros(r.p99()),
        micros(r.min()),
        micros(r.max()),
        r.received,
        r.sent
    );
    println!("cluster: figure: {line}");
    if r.lost == 0 {
        Ok(line)
    } else {
        Err(format!("{line}: {} lost: {:?}", r.lost, r.failures))
    }
}

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// The first line of these privileged tests: root (see
/// `kxdp_harness::privileged_test`) and the tools the workloads and kxdp's
/// host port use (installed by scripts/setup); fails naming what is missing.
fn can_run(test: &str) {
    privileged_test(test);
    let missing: Vec<&str> = [
        "curl", "dig", "dnsmasq", "openssl", "nft", "ping", "ss", "bpftool",
    ]
    .into_iter()
    .filter(|tool| find_program(tool).is_none())
    .collect();
    assert!(
        missing.is_empty(),
        "{test}: {missing:?} not installed (run scripts/setup)"
    );
}

// ---- The tests -------------------------------------------------------------

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_cluster_runs_on_kxdp_nodes_with_host_ports() {
    let test = "cluster";
    can_run(test);
    let cut = ClusterUnderTest::start(test);
    let mut checks = Checks::default();
    let (n1, n2) = (cut.node_ns("n1"), cut.node_ns("n2"));
    let (client_1, client_2) = (cut.pod_ns("client-1"), cut.pod_ns("client-2"));
    let web = sock(WEB_IP, 80);

    // The kubelet: probes, pings.
    for (node, ns, pod) in [("n1", &n1, "web-1"), ("n2", &n2, "web-2")] {
        let url = format!("http://{}:{HTTP_PORT}/", address_of(pod));
        checks.check(
            &format!("kubelet: HTTP GET {url} from node {node} ({pod})"),
            || {
                let body = curl(ns, &url)?;
                if body == pod {
                    Ok(format!("{pod} answered"))
                } else {
                    Err(format!("answered {body:?}, expected {pod:?}"))
                }
            },
        );
    }
    checks.check("kubelet: node n1 → pod on n2 (web-2), HTTP GET", || {
        get(&n1, sock(address_of("web-2"), HTTP_PORT))
    });
    checks.check("kubelet: ping node n1 → pod client-1", || {
        pings(&n1, address_of("client-1"))
    });
    checks.check(
        "kubelet: ping pod client-1 → its node n1's InternalIP",
        || pings(&client_1, vtep_ip(1)),
    );
    checks.check(
        "kubelet: ping pod client-1 → node n2's InternalIP",
        || pings(&client_1, vtep_ip(2)),
    );
    checks.check(
        "kubelet: ping pod client-1 → its gateway 10.244.1.1",
        || pings(&client_1, gateway_ip(1)),
    );
    checks.check(
        "kubelet: ping pod client-2 → its gateway 10.244.2.1",
        || pings(&client_2, gateway_ip(2)),
    );
    // The gateway and the node are the destination, not a hop: kxdp keeps
    // the TTL of what it hands to the node's stack, as a kernel node's
    // bridge does.
    checks.check("ping -t 1 pod client-1 → its gateway (delivered)", || {
        let gateway = gateway_ip(1).to_string();
        run(
            &client_1,
            "ping",
            &["-c", "2", "-i", "0.2", "-t", "1", "-W", "2", &gateway],
        )
        .map(|(out, _)| out)
    });
    checks.check("traceroute pod client-1 → its node n1: one hop", || {
        let node = vtep_ip(1).to_string();
        let (out, _) = run(
            &client_1,
            "traceroute",
            &["-n", "-q", "1", "-w", "2", "-m", "4", &node],
        )?;
        let hops: Vec<&str> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        if hops == [node.as_str()] {
            Ok(out)
        } else {
            Err(format!("hops {hops:?}, expected [{node}]:\n{out}"))
        }
    });

    // The figures, before any other traffic from the nodes and any
    // NetworkPolicy.
    checks.check(
        "latency: node n1 → pod web-1, HTTP GET on a new connection (kubelet probe), 200 requests",
        || {
            let r = http_rtt(
                &n1,
                sock(address_of("web-1"), HTTP_PORT),
                200,
                Duration::from_millis(5),
                REQUEST_TIMEOUT,
            )
            .map_err(|e| e.to_string())?;
            figures(
                "node → pod probe (n1 → web-1, HTTP GET, new connection)",
                &r,
            )
        },
    );
    checks.check(
        "latency: node n1 → pod web-2 on n2, HTTP GET on a new connection, 200 requests",
        || {
            let r = http_rtt(
                &n1,
                sock(address_of("web-2"), HTTP_PORT),
                200,
                Duration::from_millis(5),
                REQUEST_TIMEOUT,
            )
            .map_err(|e| e.to_string())?;
            figures(
                "node → pod probe across nodes (n1 → web-2, HTTP GET, new connection)",
                &r,
            )
        },
    );
    checks.check(
        "latency: pod client-1 → ClusterIP web, HTTP GET on a new connection, 200 requests",
        || {
            let r = http_rtt(
                &client_1,
                web,
                200,
                Duration::from_millis(5),
                REQUEST_TIMEOUT,
            )
            .map_err(|e| e.to_string())?;
            figures(
                "pod → ClusterIP (client-1 → web:80, HTTP GET, new connection)",
                &r,
            )
        },
    );
    checks.check(
        "latency: pod client-1 → ClusterIP web, TCP request/response on one connection, 200 requests",
        || {
            let options = RttOptions {
                count: 200,
                interval: Duration::from_millis(5),
                timeout: REQUEST_TIMEOUT,
                payload_len: 64,
                ..RttOptions::default()
            };
            let r = tcp_rtt_with(&client_1, sock(WEB_IP, ECHO_SERVICE_PORT), &options)
                .map_err(|e| e.to_string())?;
            figures(
                "pod → ClusterIP (client-1 → web:7, 64-byte TCP request/response, one connection)",
                &r,
            )
        },
    );

    // Cluster DNS.
    checks.check(
        &format!("DNS: dig @{DNS_IP} +notcp from client-1 (n1) to kube-dns on n2"),
        || dig(&client_1, false),
    );
    checks.check(
        &format!("DNS: dig @{DNS_IP} +tcp from client-1 (n1) to kube-dns on n2"),
        || dig(&client_1, true),
    );
    checks.check(
        &format!("DNS: dig @{DNS_IP} +notcp from client-2 (n2)"),
        || dig(&client_2, false),
    );

    // The kubernetes Service: hostNetwork endpoints on both nodes.
    for pod in ["client-1", "client-2"] {
        let ns = cut.pod_ns(pod);
        checks.check(
            &format!("kubernetes Service: curl -k https://{KUBERNETES_IP}/ from {pod} reaches both nodes' API servers"),
            || kubernetes_service(&ns),
        );
    }

    // A Service over three backends on both nodes.
    checks.check("Service: web from client-1 (n1), 60 connections", || {
        spread_over_backends(&client_1, web, 60)
    });
    checks.check("Service: web from client-2 (n2), 60 connections", || {
        spread_over_backends(&client_2, web, 60)
    });
    checks.check(
        "Service: web from node n1's namespace (host → ClusterIP), 60 connections",
        || spread_over_backends(&n1, web, 60),
    );
    checks.check(
        "Service: web from node n2's namespace (host → ClusterIP), 60 connections",
        || spread_over_backends(&n2, web, 60),
    );
    checks.check(
        "Service: web's second port (TCP echo) from client-1",
        || {
            let options = RttOptions {
                count: 5,
                timeout: REQUEST_TIMEOUT,
                ..RttOptions::default()
            };
            let r = tcp_rtt_with(&client_1, sock(WEB_IP, ECHO_SERVICE_PORT), &options)
                .map_err(|e| e.to_string())?;
            if r.lost == 0 {
                Ok(format!("{} echoes", r.received))
            } else {
                Err(format!("{} of {} echoes lost", r.lost, r.sent))
            }
        },
    );
    let external = cut.fabric_ns("client");
    for node in NODES {
        let at = sock(vtep_ip(node_number(node)), WEB_NODE_PORT);
        checks.check(
            &format!(
                "NodePort: web at {at} (node {node}) from the external client, 30 connections"
            ),
            || {
                let seen = spread(&external, at, 30)?;
                Ok(format!("30 of 30 answered, by {seen:?}"))
            },
        );
    }
    checks.check(
        "Service: locked (one backend on n2, no policy yet) from client-1",
        || get(&client_1, sock(LOCKED_IP, 80)),
    );

    // Egress.
    let internet = format!("http://{INTERNET_SERVER_IP}:{INTERNET_PORT}/");
    for (pod, node) in [("client-1", "n1"), ("client-2", "n2")] {
        let ns = cut.pod_ns(pod);
        let node_ip = vtep_ip(node_number(node)).to_string();
        let url = internet.clone();
        checks.check(
            &format!("egress: {pod} → {url} seen from its node {node}'s address"),
            || {
                let seen_as = curl(&ns, &url)?;
                if seen_as == node_ip {
                    Ok(format!("the server saw {seen_as}, the pod got the reply"))
                } else {
                    Err(format!("the server saw {seen_as:?}, expected {node_ip}"))
                }
            },
        );
    }
    let internet_clients = cut.http["internet"].clients();
    checks.check("egress: the internet server saw no pod address", || {
        let pods: Vec<&IpAddr> = internet_clients
            .keys()
            .filter(|ip| ip.to_string().starts_with("10.244."))
            .collect();
        if pods.is_empty() {
            Ok(format!("clients {internet_clients:?}"))
        } else {
            Err(format!("pod addresses {pods:?} reached it unmasqueraded"))
        }
    });

    // The second tenant.
    let red_1 = cut.pod_ns("red-1");
    checks.check(
        "tenant red: red-1 → red-2 (its own tenant) answers",
        || pings(&red_1, address_of("red-2")),
    );
    for node in NODES {
        let ip = vtep_ip(node_number(node));
        checks.check(
            &format!("tenant red: red-1 cannot ping node {node} ({ip})"),
            || no_pings(&red_1, ip),
        );
    }
    checks.check("tenant red: red-1 cannot reach the web Service", || {
        refused(&red_1, web)
    });
    checks.check(
        "tenant red: red-1 cannot reach web-1 (a blue pod) directly",
        || refused(&red_1, sock(address_of("web-1"), HTTP_PORT)),
    );
    checks.check(
        "tenant red: red-1 gets no answer from cluster DNS",
        || match dig(&red_1, false) {
            Ok(answer) => Err(format!("answered: {answer}")),
            Err(e) => Ok(format!("no answer ({e})")),
        },
    );
    checks.check(
        "tenant red: red-1 cannot reach the kubernetes Service",
        || refused(&red_1, sock(KUBERNETES_IP, 443)),
    );
    checks.check("tenant red: red-1 has no egress", || {
        refused(&red_1, sock(INTERNET_SERVER_IP, INTERNET_PORT))
    });
    let red_ip = IpAddr::V4(address_of("red-1"));
    checks.check("tenant red: no server saw red-1", || {
        let saw: Vec<&String> = cut
            .http
            .iter()
            .filter(|(_, s)| s.clients().contains_key(&red_ip))
            .map(|(name, _)| name)
            .collect();
        if saw.is_empty() {
            Ok("none".into())
        } else {
            Err(format!("{saw:?} accepted connections from {red_ip}"))
        }
    });

    network_policy(&cut, &mut checks, test);

    let logs = cut.cluster.logs();
    cut.finish(&mut checks);
    checks.assert_all_passed(test, &logs);
}

/// Kubernetes NetworkPolicy semantics for a backend behind a Service: a
/// default-deny ingress policy still lets the pod's own node (the kubelet's
/// probes) through and refuses everything else, whether it comes straight
/// to the pod, through the ClusterIP or through a NodePort.
fn network_policy(cut: &ClusterUnderTest, checks: &mut Checks, test: &str) {
    let (n1, n2) = (cut.node_ns("n1"), cut.node_ns("n2"));
    let client_1 = cut.pod_ns("client-1");
    let external = cut.fabric_ns("client");
    let locked_pod = sock(address_of("locked"), HTTP_PORT);
    let locked_service = sock(LOCKED_IP, 80);
    let locked_node_port = sock(vtep_ip(1), LOCKED_NODE_PORT);

    // Before the policy, everything reaches it.
    checks.check(
        "policy: before, client-1 reaches locked through its ClusterIP",
        || get(&client_1, locked_service),
    );
    checks.check(
        "policy: before, the external client reaches it at n1's NodePort",
        || get(&external, locked_node_port),
    );

    cut.server
        .store()
        .create_object(default_deny_ingress())
        .unwrap_or_else(|e| panic!("{test}: creating the NetworkPolicy: {e:?}"));
    let programmed = eventually(Duration::from_secs(20), || {
        NODES.iter().all(|n| {
            cut.api(n)
                .list(&[ObjectKind::Policy])
                .is_ok_and(|(_, set)| set.policies.len() == 1)
        })
    });
    checks.check("policy: both agents programmed the NetworkPolicy", || {
        if programmed {
            Ok("within 20 s".into())
        } else {
            Err(format!("{test}: not within 20 s"))
        }
    });

    checks.check("policy: its own node n2 still probes it (kubelet)", || {
        get(&n2, locked_pod)
    });
    checks.check("policy: another node (n1) cannot reach it directly", || {
        refused(&n1, locked_pod)
    });
    checks.check("policy: client-1 cannot reach it directly", || {
        refused(&client_1, locked_pod)
    });
    checks.check(
        "policy: client-1 cannot reach it through its ClusterIP",
        || refused(&client_1, locked_service),
    );
    checks.check(
        "policy: the external client cannot reach it at n1's NodePort",
        || refused(&external, locked_node_port),
    );
    checks.check(
        "policy: other backends are not isolated (web from client-1)",
        || spread_over_backends(&client_1, sock(WEB_IP, 80), 30),
    );
}

/// A node whose own stack has IPv6 disabled (a common hardening, or
/// `ipv6.disable=1`) still gets an IPv4 host port: kxdp starts, the pod
/// reaches its node and the node its pod.
#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_host_port_on_a_node_without_ipv6() {
    let test = "cluster_without_ipv6";
    can_run(test);
    let spec = TopologySpec::new(Underlay::Switch, &[(BLUE, 100)]).with_node(
        NodeSpec::new("n1", NodeKind::Kxdp)
            .with_host_port()
            .with_pod("client-1", BLUE, pod_ip(1, 10)),
    );
    let mut cluster = Cluster::build(test, spec, kxdp_binary!());
    let node_ns = cluster.node("n1").netns.clone();
    node_ns
        .set_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    cluster.start_kxdp("n1");
    let pod_ns = cluster.pod("client-1").netns.clone();
    let mut checks = Checks::default();
    checks.check("no IPv6: pod client-1 pings its node", || {
        pings(&pod_ns, vtep_ip(1))
    });
    checks.check("no IPv6: node n1 pings pod client-1", || {
        pings(&node_ns, pod_ip(1, 10))
    });
    let logs = cluster.logs();
    cluster.finish();
    checks.assert_all_passed(test, &logs);
}

/// One `GET /` on `stream`: the body, trimmed.
fn exchange(mut stream: std::net::TcpStream) -> std::io::Result<String> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !(response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"\n")) {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    Ok(text
        .split_once("\r\n\r\n")
        .map_or(text.as_str(), |(_, body)| body)
        .trim()
        .to_string())
}

/// A TCP connection to `to` from local port `port` (SO_REUSEADDR, as a
/// reused ephemeral port), giving up after [`REQUEST_TIMEOUT`].
fn connect_from(port: u16, to: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{
        bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use nix::sys::time::TimeVal;
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(to) = to else {
        return Err(std::io::ErrorKind::Unsupported.into());
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    // connect(2) gives up after the send timeout.
    let timeout = TimeVal::new(REQUEST_TIMEOUT.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
    )?;
    match connect(fd.as_raw_fd(), &SockaddrIn::from(to)) {
        Ok(()) => {}
        // What a connect(2) that ran out of its send timeout says.
        Err(nix::errno::Errno::EINPROGRESS) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connection to {to} timed out after {REQUEST_TIMEOUT:?}"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(std::net::TcpStream::from(fd))
}

/// A client that connected to a ClusterIP from a port, closed, and then
/// connects straight to the backend that served it from the same port (an
/// ephemeral port coming round again, as it does for a node's kubelet
/// probes beside its ClusterIP traffic) must get its answer from the
/// backend, not translated to the ClusterIP by the load balancer's entry
/// for the closed connection (which once kept the new connection from
/// ever completing).
#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_direct_connection_reusing_a_clusterip_connections_port() {
    let test = "cluster_port_reuse";
    can_run(test);
    let cut = ClusterUnderTest::start(test);
    let mut checks = Checks::default();
    let backends: BTreeMap<String, Ipv4Addr> = WEB_BACKENDS
        .iter()
        .map(|b| (b.to_string(), address_of(b)))
        .collect();
    for (from, ns) in [
        ("node n1", cut.node_ns("n1")),
        ("pod client-1", cut.pod_ns("client-1")),
    ] {
        let backends = backends.clone();
        let outcome = ns
            .run_in(move || {
                (40001..=40004u16)
                    .map(|port| {
                        let via = connect_from(port, sock(WEB_IP, 80)).and_then(exchange);
                        let who = match via {
                            Ok(who) => who,
                            Err(e) => return format!("port {port}: ClusterIP: {e}"),
                        };
                        let Some(ip) = backends.get(&who) else {
                            return format!("port {port}: ClusterIP answered {who:?}");
                        };
                        match connect_from(port, sock(*ip, HTTP_PORT)).and_then(exchange) {
                            Ok(direct) if direct == who => String::new(),
                            Ok(direct) => format!("port {port}: {ip} answered {direct:?}"),
                            Err(e) => format!("port {port}: ClusterIP → {who}, then {ip}: {e}"),
                        }
                    })
                    .filter(|problem| !problem.is_empty())
                    .collect::<Vec<String>>()
            })
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        checks.check(
            &format!("port reuse: from {from}, the ClusterIP then its backend directly, same client port"),
            || {
                if outcome.is_empty() {
                    Ok("4 of 4 direct connections answered".into())
                } else {
                    Err(format!("{outcome:?}"))
                }
            },
        );
    }
    let logs = cut.cluster.logs();
    cut.finish(&mut checks);
    checks.assert_all_passed(test, &logs);
}
