#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn settings() -> IndexSettings {
    IndexSettings {
        node_name: "n1".into(),
        default_tenant: "blue".into(),
        tenants: ["blue".to_string(), "red".to_string()]
            .into_iter()
            .collect(),
        pod_interfaces: ["veth-a".to_string(), "veth-b".to_string()]
            .into_iter()
            .collect(),
    }
}

fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn node(name: &str, ip: &str, mac: Option<&str>, cidrs: &[&str]) -> Resource {
    let mut annotations = serde_json::Map::new();
    if let Some(mac) = mac {
        annotations.insert(VTEP_MAC_ANNOTATION.into(), json!(mac));
    }
    Resource::Node(Box::new(from(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"podCIDRs": cidrs},
        "status": {"addresses": [
            {"type": "Hostname", "address": name},
            {"type": "InternalIP", "address": ip}
        ]}
    }))))
}

fn pod(ns: &str, name: &str, node: &str, ips: &[&str], itf: Option<&str>) -> Resource {
    let mut annotations = serde_json::Map::new();
    if let Some(itf) = itf {
        annotations.insert(INTERFACE_ANNOTATION.into(), json!(itf));
    }
    annotations.insert(MAC_ANNOTATION.into(), json!("02:00:00:00:0a:01"));
    let ips: Vec<serde_json::Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    Resource::Pod(Box::new(from(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}, "annotations": annotations},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running", "podIPs": ips}
    }))))
}

fn namespace(name: &str, tenant: Option<&str>) -> Resource {
    let mut labels = serde_json::Map::new();
    labels.insert("team".into(), json!("shop"));
    if let Some(t) = tenant {
        labels.insert(TENANT_LABEL.into(), json!(t));
    }
    Resource::Namespace(Box::new(from(json!({
        "metadata": {"name": name, "labels": labels}
    }))))
}

fn service(ns: &str, name: &str, cluster_ip: &str, target: serde_json::Value) -> Resource {
    Resource::Service(Box::new(from(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": cluster_ip, "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": target}
        ]}
    }))))
}

fn slice(ns: &str, name: &str, service: &str, endpoints: serde_json::Value) -> Resource {
    Resource::EndpointSlice(Box::new(from(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    }))))
}

#[test]
fn pods_of_this_node_only_with_their_interface_and_tenant() {
    let mut index = Index::new(settings());
    index.upsert(namespace("shop", Some("red")));
    index.upsert(pod("shop", "web-1", "n1", &["10.1.1.10"], Some("veth-a")));
    index.upsert(pod("shop", "web-2", "n2", &["10.1.2.10"], Some("veth-b")));
    index.upsert(pod(
        "default",
        "db",
        "n1",
        &["10.1.1.11", "fd00::11"],
        Some("veth-b"),
    ));
    index.upsert(pod("default", "bare", "n1", &["10.1.1.12"], None));
    let model = index.model();
    let pods = &model.objects.pods;
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert_eq!(pods[0].name, "default/db");
    assert_eq!(pods[0].tenant, "blue", "no label: the default tenant");
    assert_eq!(pods[0].ipv6, Some("fd00::11".parse().unwrap()));
    assert_eq!(pods[1].name, "shop/web-1");
    assert_eq!(pods[1].tenant, "red");
    assert_eq!(pods[1].interface, "veth-a");
    assert_eq!(pods[1].labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(pods[1].namespace, "shop");
    assert_eq!(model.skipped.len(), 1);
    assert_eq!(model.skipped[0].key, "default/bare");
    assert!(model.skipped[0].reason.contains(INTERFACE_ANNOTATION));
}

/// What kxdp-cni registers for a pod: its interface, MAC, container id and
/// tenant (the namespace's, as the plugin read it from kxdp), no labels.
fn registration(name: &str, ip: &str, interface: &str) -> PodSpec {
    PodSpec {
        name: name.into(),
        tenant: "red".into(),
        ip: ip.parse().unwrap(),
        ipv6: None,
        mac: "02:0a:00:00:00:07".parse().unwrap(),
        interface: interface.into(),
        labels: Default::default(),
        namespace: "shop".into(),
        container_id: Some("c0ffee".into()),
    }
}

#[test]
fn a_pod_wired_by_kxdp_cni_gets_its_labels_and_keeps_its_tenant() {
    let mut index = Index::new(settings());
    // Relabelled since the pod was wired: the pod stays where its address is.
    index.upsert(namespace("shop", Some("blue")));
    index.upsert(pod("shop", "web-1", "n1", &["10.1.1.20"], None));
    index.upsert(pod("shop", "web-2", "n1", &["10.1.1.21"], None));
    index.upsert(pod("shop", "web-3", "n1", &["10.1.1.22"], None));
    index.set_cni_pods(&[
        // Not one of the file's pod interfaces: kxdp-cni's own veth.
        registration("shop/web-1", "10.1.1.20", "kx0123456789a"),
        // Registered under another address than Kubernetes reports.
        registration("shop/web-2", "10.1.1.99", "kx0123456789b"),
    ]);
    let model = index.model();
    assert_eq!(model.objects.pods.len(), 1, "{model:?}");
    let web = &model.objects.pods[0];
    assert_eq!(web.name, "shop/web-1");
    assert_eq!(web.interface, "kx0123456789a");
    assert_eq!(web.mac, "02:0a:00:00:00:07".parse().unwrap());
    assert_eq!(web.container_id.as_deref(), Some("c0ffee"));
    assert_eq!(
        web.tenant, "red",
        "the namespace's tenant, not the CNI args'"
    );
    assert_eq!(web.labels.get("app").map(String::as_str), Some("web"));
    let reasons: BTreeMap<&str, &str> = model
        .skipped
        .iter()
        .map(|s| (s.key.as_str(), s.reason.as_str()))
        .collect();
    assert!(reasons["shop/web-2"].contains("10.1.1.99"), "{reasons:?}");
    assert!(reasons["shop/web-3"].contains("kxdp-cni"), "{reasons:?}");
}

#[test]
fn a_pod_ip_change_and_a_finished_pod_show_in_the_model() {
    let mut index = Index::new(settings());
    index.upsert(pod("default", "web", "n1", &["10.1.1.10"], Some("veth-a")));
    assert_eq!(
        index.model().objects.pods[0].ip,
        "10.1.1.10".parse::<IpAddr>().unwrap()
    );
    index.upsert(pod("default", "web", "n1", &["10.1.1.20"], Some("veth-a")));
    let pods = index.model().objects.pods;
    assert_eq!(pods.len(), 1, "the same pod, replaced");
    assert_eq!(pods[0].ip, "10.1.1.20".parse::<IpAddr>().unwrap());
    let Resource::Pod(mut done) = pod("default", "web", "n1", &["10.1.1.20"], Some("veth-a"))
    else {
        unreachable!()
    };
    if let Some(status) = done.status.as_mut() {
        status.phase = Some("Succeeded".into());
    }
    index.upsert(Resource::Pod(done));
    assert!(index.model().objects.pods.is_empty());
    assert!(index.model().skipped.is_empty());
}

#[test]
fn pods_of_unknown_tenants_or_interfaces_are_left_out_with_the_reason() {
    let mut index = Index::new(settings());
    index.upsert(namespace("green", Some("green")));
    index.upsert(pod("green", "g", "n1", &["10.1.1.10"], Some("veth-a")));
    index.upsert(pod("default", "x", "n1", &["10.1.1.11"], Some("eth7")));
    let model = index.model();
    assert!(model.objects.pods.is_empty());
    let reasons: Vec<&str> = model.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(reasons[0].contains("eth7"), "{reasons:?}");
    assert!(reasons[1].contains("tenant green"), "{reasons:?}");
}

#[test]
fn nodes_become_remote_nodes_and_go_when_deleted() {
    let mut index = Index::new(settings());
    index.upsert(node(
        "n1",
        "192.168.0.1",
        Some("02:00:00:00:00:01"),
        &["10.1.1.0/24"],
    ));
    index.upsert(node(
        "n2",
        "192.168.0.2",
        Some("02:00:00:00:00:02"),
        &["10.1.2.0/24"],
    ));
    index.upsert(node("n3", "192.168.0.3", None, &["10.1.3.0/24"]));
    let model = index.model();
    assert_eq!(model.objects.remote_nodes.len(), 1, "not itself, not n3");
    let n2 = &model.objects.remote_nodes[0];
    assert_eq!(n2.name, "n2");
    assert_eq!(n2.vtep_ip, "192.168.0.2".parse::<Ipv4Addr>().unwrap());
    assert_eq!(n2.vtep_mac, "02:00:00:00:00:02".parse::<MacAddr>().unwrap());
    assert_eq!(n2.pod_cidrs.len(), 1);
    assert_eq!(n2.pod_cidrs[0].tenant, "blue");
    assert_eq!(
        n2.pod_cidrs[0].cidr,
        "10.1.2.0/24".parse::<IpNetwork>().unwrap()
    );
    assert_eq!(model.skipped.len(), 1);
    assert!(model.skipped[0].reason.contains(VTEP_MAC_ANNOTATION));

    index.remove(&node("n2", "192.168.0.2", None, &[]));
    assert!(index.model().objects.remote_nodes.is_empty());
}

#[test]
fn remote_nodes_are_reached_at_every_internal_ip_once() {
    let mut index = Index::new(settings());
    index.upsert(Resource::Node(Box::new(from(json!({
        "metadata": {"name": "n2", "annotations": {VTEP_MAC_ANNOTATION: "02:00:00:00:00:02"}},
        "spec": {"podCIDRs": ["10.1.2.0/24"]},
        "status": {"addresses": [
            {"type": "Hostname", "address": "n2"},
            {"type": "InternalIP", "address": "fd00:100::2"},
            {"type": "ExternalIP", "address": "203.0.113.2"},
            {"type": "InternalIP", "address": "192.168.100.2"},
            {"type": "InternalIP", "address": "fd00:100::2"}
        ]}
    })))));
    let model = index.model();
    let n2 = &model.objects.remote_nodes[0];
    assert_eq!(
        n2.vtep_ip,
        "192.168.100.2".parse::<Ipv4Addr>().unwrap(),
        "the VTEP: the first IPv4 InternalIP"
    );
    let ips: Vec<String> = n2.node_ips.iter().map(IpAddr::to_string).collect();
    assert_eq!(
        ips,
        vec!["fd00:100::2".to_string(), "192.168.100.2".to_string()],
        "InternalIPs in order, once each, no ExternalIP"
    );

    // The usual single-address node: its one InternalIP.
    index.upsert(node(
        "n3",
        "192.168.100.3",
        Some("02:00:00:00:00:03"),
        &["10.1.3.0/24"],
    ));
    let model = index.model();
    assert_eq!(
        model.objects.remote_nodes[1].node_ips,
        vec!["192.168.100.3".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn node_cidrs_per_tenant_and_flannel_macs() {
    let mut index = Index::new(settings());
    let Resource::Node(mut n2) = node("n2", "192.168.0.2", None, &["10.1.2.0/24"]) else {
        unreachable!()
    };
    let annotations = n2.metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(
        FLANNEL_BACKEND_ANNOTATION.into(),
        r#"{"VNI":1,"VtepMAC":"0a:00:00:00:00:02"}"#.into(),
    );
    annotations.insert(
        POD_CIDRS_ANNOTATION.into(),
        "blue=10.1.2.0/24, red=10.2.2.0/24".into(),
    );
    index.upsert(Resource::Node(n2));
    let remote = &index.model().objects.remote_nodes[0];
    assert_eq!(
        remote.vtep_mac,
        "0a:00:00:00:00:02".parse::<MacAddr>().unwrap()
    );
    let cidrs: Vec<(String, String)> = remote
        .pod_cidrs
        .iter()
        .map(|c| (c.tenant.clone(), c.cidr.to_string()))
        .collect();
    assert_eq!(
        cidrs,
        vec![
            ("blue".to_string(), "10.1.2.0/24".to_string()),
            ("red".to_string(), "10.2.2.0/24".to_string())
        ]
    );
}

#[test]
fn services_take_endpoints_from_their_slices_with_conditions() {
    let mut index = Index::new(settings());
    index.upsert(service("default", "web", "10.96.0.10", json!("http")));
    index.upsert(slice(
        "default",
        "web-abc",
        "web",
        json!([
            {"addresses": ["10.1.1.10"], "conditions": {"ready": true},
             "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}},
            {"addresses": ["10.1.2.10"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.1.2.11"]}
        ]),
    ));
    index.upsert(slice(
        "default",
        "web-def",
        "web",
        json!([{"addresses": ["10.1.3.10", "10.1.1.10"], "conditions": {"ready": false}}]),
    ));
    // Another service's slice does not leak in.
    index.upsert(slice(
        "default",
        "db-1",
        "db",
        json!([{"addresses": ["10.1.9.9"]}]),
    ));
    let model = index.model();
    assert_eq!(model.objects.services.len(), 1);
    let web = &model.objects.services[0];
    assert_eq!(web.cluster_ip, "10.96.0.10".parse::<IpAddr>().unwrap());
    assert_eq!(web.ports[0].port, 80);
    assert_eq!(web.ports[0].target_port, Some(8080), "named port resolved");
    let eps: Vec<(String, bool, bool, bool)> = web
        .endpoints
        .iter()
        .map(|e| (e.ip.to_string(), e.ready, e.serving, e.terminating))
        .collect();
    assert_eq!(
        eps,
        vec![
            ("10.1.1.10".into(), true, true, false),
            ("10.1.2.10".into(), false, true, true),
            ("10.1.2.11".into(), true, true, false),
            ("10.1.3.10".into(), false, false, false),
        ]
    );
    assert_eq!(web.endpoints[0].pod.as_deref(), Some("default/web-1"));
    assert_eq!(web.endpoints[0].node.as_deref(), Some("n1"));

    // The endpoint goes terminating, then its slice goes.
    index.upsert(slice(
        "default",
        "web-abc",
        "web",
        json!([{"addresses": ["10.1.1.10"], "conditions": {"ready": false, "serving": false, "terminating": true}}]),
    ));
    let web = &index.model().objects.services[0];
    assert!(web.endpoints[0].terminating && !web.endpoints[0].ready);
    index.remove(&slice("default", "web-def", "web", json!([])));
    index.remove(&slice("default", "web-abc", "web", json!([])));
    assert!(index.model().objects.services[0].endpoints.is_empty());
}

#[test]
fn headless_and_external_name_services_are_left_out_with_the_reason() {
    let mut index = Index::new(settings());
    index.upsert(service("default", "hl", "None", json!(80)));
    index.upsert(service("default", "web", "10.96.0.11", json!(8080)));
    index.upsert(Resource::Service(Box::new(from(json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}
    })))));
    let model = index.model();
    let services = &model.objects.services;
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].name, "web");
    assert_eq!(services[0].ports[0].target_port, Some(8080));
    let skipped: Vec<(&str, &str)> = model
        .skipped
        .iter()
        .map(|s| (s.key.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "default/ext");
    assert!(skipped[0].1.contains("ExternalName"), "{skipped:?}");
    assert_eq!(skipped[1].0, "default/hl");
    assert!(skipped[1].1.contains("headless"), "{skipped:?}");
    assert!(model.skipped.iter().all(|s| s.kind == WatchedKind::Service));
}

/// A Service of `type_` with two ports, each with a nodePort.
fn typed_service(name: &str, type_: &str) -> Resource {
    Resource::Service(Box::new(from(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": type_, "clusterIP": "10.96.0.20", "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353, "nodePort": 30053}
        ]}
    }))))
}

#[test]
fn node_port_and_load_balancer_services_carry_their_node_ports() {
    let mut index = Index::new(settings());
    index.upsert(typed_service("np", "NodePort"));
    index.upsert(typed_service("lb", "LoadBalancer"));
    let model = index.model();
    assert!(model.skipped.is_empty(), "{:?}", model.skipped);
    let services = &model.objects.services;
    assert_eq!(services.len(), 2);
    for service in services {
        let ports: Vec<(Protocol, u16, Option<u16>, Option<u16>)> = service
            .ports
            .iter()
            .map(|p| (p.protocol, p.port, p.target_port, p.node_port))
            .collect();
        assert_eq!(
            ports,
            vec![
                (Protocol::Tcp, 80, Some(8080), Some(30080)),
                (Protocol::Udp, 53, Some(5353), Some(30053)),
            ],
            "{}",
            service.name
        );
    }
}

#[test]
fn a_cluster_ip_service_ignores_its_node_port_field() {
    let mut index = Index::new(settings());
    // The API server refuses this; an object built by hand may have it.
    index.upsert(typed_service("web", "ClusterIP"));
    let model = index.model();
    let web = &model.objects.services[0];
    assert_eq!(web.ports.len(), 2);
    assert!(web.ports.iter().all(|p| p.node_port.is_none()), "{web:?}");
    // No type at all is ClusterIP too.
    let Resource::Service(mut untyped) = typed_service("web", "ClusterIP") else {
        unreachable!()
    };
    if let Some(spec) = untyped.spec.as_mut() {
        spec.type_ = None;
    }
    index.upsert(Resource::Service(untyped));
    let web = &index.model().objects.services[0];
    assert!(web.ports.iter().all(|p| p.node_port.is_none()), "{web:?}");
}

#[test]
fn a_node_port_that_is_no_port_is_refused_with_the_field() {
    let mut index = Index::new(settings());
    index.upsert(Resource::Service(Box::new(from(json!({
        "metadata": {"name": "np", "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "ports": [
            {"port": 80, "nodePort": 70000}
        ]}
    })))));
    let model = index.model();
    assert!(model.objects.services.is_empty());
    assert!(
        model.skipped[0]
            .reason
            .starts_with("spec.ports[0].nodePort: 70000"),
        "{:?}",
        model.skipped
    );
}

#[test]
fn session_affinity_and_internal_traffic_policy_map_to_the_service() {
    let mut index = Index::new(settings());
    index.upsert(Resource::Service(Box::new(from(json!({
        "metadata": {"name": "sticky", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 80}],
                 "sessionAffinity": "ClientIP",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                 "internalTrafficPolicy": "Cluster"}
    })))));
    index.upsert(Resource::Service(Box::new(from(json!({
        "metadata": {"name": "local", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.31", "ports": [{"port": 80}],
                 "sessionAffinity": "None",
                 "internalTrafficPolicy": "Local"}
    })))));
    index.upsert(service("default", "plain", "10.96.0.32", json!(80)));
    let services = index.model().objects.services;
    let flags: Vec<(&str, bool, bool)> = services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.client_ip_affinity,
                s.internal_traffic_local,
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            ("local", false, true),
            ("plain", false, false),
            ("sticky", true, false),
        ]
    );
}

#[test]
fn the_kubernetes_service_takes_the_api_servers_host_network_endpoints() {
    let mut index = Index::new(settings());
    // As the API server writes them: no targetRef (no pod), the nodes' own
    // addresses, a nodeName on one of them.
    index.upsert(Resource::Service(Box::new(from(json!({
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                 "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}
    })))));
    index.upsert(Resource::EndpointSlice(Box::new(from(json!({
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {SERVICE_NAME_LABEL: "kubernetes",
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["192.168.100.1"], "conditions": {"ready": true}},
            {"addresses": ["192.168.100.2"], "conditions": {"ready": true}, "nodeName": "n2"}
        ]
    })))));
    let model = index.model();
    assert!(model.skipped.is_empty(), "{:?}", model.skipped);
    let kubernetes = &model.objects.services[0];
    assert_eq!(kubernetes.name, "kubernetes");
    assert_eq!(kubernetes.namespace, "default");
    assert_eq!(kubernetes.tenant, "blue");
    assert_eq!(
        kubernetes.cluster_ip,
        "10.96.0.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(kubernetes.ports[0].port, 443);
    assert_eq!(kubernetes.ports[0].target_port, Some(6443));
    assert_eq!(kubernetes.ports[0].node_port, None);
    let endpoints: Vec<(String, Option<&str>, Option<&str>, bool)> = kubernetes
        .endpoints
        .iter()
        .map(|e| {
            (
                e.ip.to_string(),
                e.pod.as_deref(),
                e.node.as_deref(),
                e.ready,
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        vec![
            ("192.168.100.1".to_string(), None, None, true),
            ("192.168.100.2".to_string(), None, Some("n2"), true),
        ]
    );
}

#[test]
fn a_dual_stack_service_takes_the_endpoints_of_its_cluster_ip_family() {
    let mut index = Index::new(settings());
    index.upsert(Resource::Service(Box::new(from(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "fd00:96::10", "clusterIPs": ["fd00:96::10", "10.96.0.10"],
                 "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack",
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    })))));
    index.upsert(slice(
        "default",
        "web-v4",
        "web",
        json!([{"addresses": ["10.1.1.10"]}]),
    ));
    let Resource::EndpointSlice(mut v6) = slice(
        "default",
        "web-v6",
        "web",
        json!([{"addresses": ["fd00:1::10"]}]),
    ) else {
        unreachable!()
    };
    v6.address_type = "IPv6".into();
    index.upsert(Resource::EndpointSlice(v6));
    let model = index.model();
    assert!(model.skipped.is_empty(), "{:?}", model.skipped);
    let web = &model.objects.services[0];
    let ips: Vec<String> = web.endpoints.iter().map(|e| e.ip.to_string()).collect();
    assert_eq!(ips, vec!["fd00:1::10".to_string()]);
    assert_eq!(web.ports[0].target_port, Some(8080));
}

#[test]
fn policies_translate_field_by_field_with_ip_block_except() {
    let mut index = Index::new(settings());
    index.upsert(Resource::NetworkPolicy(Box::new(from(json!({
        "metadata": {"name": "allow", "namespace": "shop"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"from": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16", "10.8.0.0/16"]}},
                    {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["shop"]}]},
                     "podSelector": {"matchLabels": {"role": "client"}}}
                 ],
                 "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 5000, "endPort": 5010}]},
                {"ports": [{"port": "http"}]}
            ],
            "egress": [{"ports": [{"port": "dns"}]}]
        }
    })))));
    let model = index.model();
    let policy = &model.objects.policies[0];
    assert_eq!(policy.name, "allow");
    assert_eq!(policy.namespace, "shop");
    assert_eq!(
        policy
            .pod_selector
            .match_labels
            .get("app")
            .map(String::as_str),
        Some("web")
    );
    assert_eq!(policy.ingress.len(), 1, "the named-port rule is left out");
    let block = policy.ingress[0].peers[0].ip_block.as_ref().unwrap();
    assert_eq!(block.cidr, "10.0.0.0/8".parse::<IpNetwork>().unwrap());
    assert_eq!(block.except.len(), 2);
    assert_eq!(block.except[1], "10.8.0.0/16".parse::<IpNetwork>().unwrap());
    let selector = policy.ingress[0].peers[1]
        .namespace_selector
        .as_ref()
        .unwrap();
    assert_eq!(selector.match_expressions[0].operator, SelectorOperator::In);
    assert_eq!(policy.ingress[0].ports[1].protocol, Protocol::Udp);
    assert_eq!(policy.ingress[0].ports[1].end_port, Some(5010));
    assert!(policy.egress.is_empty());
    assert_eq!(
        policy.effective_types(),
        vec![PolicyType::Ingress, PolicyType::Egress],
        "its egress rule was left out, egress stays governed (deny)"
    );
    assert_eq!(model.skipped.len(), 1);
    assert!(model.skipped[0].reason.contains("2 rule(s)"));
}

#[test]
fn a_bad_policy_is_left_out_with_the_field() {
    let mut index = Index::new(settings());
    index.upsert(Resource::NetworkPolicy(Box::new(from(json!({
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["nope"]}}]}]}
    })))));
    let model = index.model();
    assert!(model.objects.policies.is_empty());
    assert!(
        model.skipped[0]
            .reason
            .starts_with("spec.ingress[0].from[0].ipBlock.except[0]"),
        "{:?}",
        model.skipped
    );
}

#[test]
fn chains_take_the_namespace_tenant() {
    let mut index = Index::new(settings());
    index.upsert(namespace("shop", Some("red")));
    let chain: ServiceChain = from(json!({
        "apiVersion": "kxdp.io/v1alpha1", "kind": "ServiceChain",
        "metadata": {"name": "fw", "namespace": "shop"},
        "spec": {"functions": [{"type": "policy"}, {"type": "counter"}]}
    }));
    index.upsert(Resource::ServiceChain(Box::new(chain.clone())));
    let chains = index.model().objects.chains;
    assert_eq!(chains[0].name, "shop/fw");
    assert_eq!(chains[0].tenant, "red");
    // The namespace changes tenant: so does the chain.
    index.upsert(namespace("shop", None));
    assert_eq!(index.model().objects.chains[0].tenant, "blue");
    let mut empty = chain;
    empty.spec.functions.clear();
    index.upsert(Resource::ServiceChain(Box::new(empty)));
    let model = index.model();
    assert!(model.objects.chains.is_empty());
    assert!(model.skipped[0].reason.contains("spec.functions"));
}

#[test]
fn a_relist_replaces_one_kind_whole() {
    let mut index = Index::new(settings());
    index.upsert(namespace("a", None));
    index.upsert(namespace("b", None));
    index.upsert(pod("a", "p", "n1", &["10.1.1.10"], Some("veth-a")));
    index.replace(WatchedKind::Namespace, vec![namespace("c", Some("red"))]);
    assert_eq!(index.len(WatchedKind::Namespace), 1);
    assert_eq!(index.len(WatchedKind::Pod), 1, "other kinds stay");
    let names: Vec<String> = index
        .model()
        .objects
        .namespaces
        .iter()
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(names, vec!["c".to_string()]);
}
