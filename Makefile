# make test: install what the tests need (as root, when missing), start it on
# loopback, run every test under the race detector, stop it again.
# make run:  the REST server on its embedded SQLite store.
# make bench: every benchmark, with the same servers started.

.PHONY: test run bench fmt

test:
	bash .ci/test.sh

run:
	go run ./examples/server

bench:
	bash .ci/bench.sh

fmt:
	gofmt -w $$(git ls-files '*.go')
