// The pod sandbox ("pause") program of the test cluster, built here because
// no image registry is reachable. No dependencies.
module strait.test/pause

go 1.26.0
