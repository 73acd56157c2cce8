# Sourced by the tool installers (tests/k8s-tools/install.sh,
# tests/k8s-tools/jaeger/install.sh, tests/cluster/install.sh): puts Go on
# PATH when it is installed but not there yet (CI shells, sudo).
if ! command -v go >/dev/null 2>&1; then
  for d in /usr/local/go/bin "$HOME/go/bin" /usr/lib/go/bin; do
    if [[ -x $d/go ]]; then PATH=$d:$PATH; break; fi
  done
fi
