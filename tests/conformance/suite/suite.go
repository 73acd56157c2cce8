// Package suite only pins the conformance suite's module; run.sh builds
// its test binary with `go test -c sigs.k8s.io/gateway-api/conformance`.
package suite

import _ "sigs.k8s.io/gateway-api/conformance"
