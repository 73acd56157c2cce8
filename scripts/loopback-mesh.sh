# Sourced by bench/run.sh and scripts/pgo-train.sh: the nginx upstream and
# the manifests both run strait-proxy against, written once.
#
#   nginx_conf DIR H1_PORT H2_PORT   nginx.conf on stdout (state under DIR)
#   svc NAME PORT ADDR...            a Service and its EndpointSlice
#   filler_services COUNT            Services whose COUNT endpoints (in
#                                    127.10.0.0/16, nothing listening) are
#                                    known but never contacted

# nginx, one worker, a 20-byte 200 on an HTTP/1.1 port and on an h2c (prior
# knowledge) port; nginx 1.22 cannot serve both on one port.
nginx_conf() {
    local dir=$1 h1=$2 h2=$3
    cat <<CONF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$h1; location / { return 200 "hello from upstream\n"; } }
  server { listen 127.0.0.1:$h2 http2; location / { return 200 "hello from upstream\n"; } }
}
CONF
}

svc() {
    local name=$1 port=$2 a
    shift 2
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\nspec: {ports: [{name: http, port: 80}]}\n' "$name"
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nports: [{name: http, port: %s}]\nendpoints:\n' "$name" "$name" "$port"
    for a in "$@"; do printf -- '- {addresses: [%s], conditions: {ready: true}}\n' "$a"; done
}

# A Service in namespace shop whose one endpoint (127.0.0.1:PORT) is meshed
# Pod POD running as ServiceAccount SA: its callers' proxies speak mTLS to
# it and expect that identity (bench/mtls.sh, scripts/pgo-train.sh).
meshed_svc() { # NAME PORT POD SA
    local name=$1 port=$2 pod=$3 sa=$4
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: shop}\nspec: {ports: [{name: http, port: 80}]}\n' "$name"
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s-1, namespace: shop, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nports: [{name: http, port: %s}]\nendpoints: [{addresses: ["127.0.0.1"], targetRef: {kind: Pod, name: %s}}]\n' "$name" "$name" "$port" "$pod"
    printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: shop, annotations: {strait.dev/proxy-version: loopback}}\nspec: {serviceAccountName: %s}\n' "$pod" "$sa"
}

filler_services() {
    local left=$1 i=0 n j addrs
    while ((left > 0)); do
        n=$((left < 20 ? left : 20)) addrs=()
        for ((j = 1; j <= n; j++)); do addrs+=("127.10.$((i / 250)).$((i % 250 + 1))"); i=$((i + 1)); done
        svc "filler-$i" 8080 "${addrs[@]}"
        left=$((left - n))
    done
}
