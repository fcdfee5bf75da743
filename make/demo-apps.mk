# Demo apps (demo-apps/): frontend, backend and load client with certificate
# hot reload. Included by the top-level Makefile, which defines GO and BIN and
# exports GOBIN.

DEMO_APPS      := backend frontend client localca
DEMO_VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DEMO_RUN_DIR   ?= $(BIN)/demo-apps-run
# How many requests `make run-local*` sends (0 = until Ctrl-C), and how often.
COUNT          ?= 20
INTERVAL       ?= 500ms
CONCURRENCY    ?= 1
# Leaf rotation period for run-local-mtls.
ROTATE_EVERY   ?= 3s

# Wait until a loopback port accepts connections (bash /dev/tcp, no curl).
demo_wait_port = for _ in $$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$(1)) 2>/dev/null && break; sleep 0.1; done


.PHONY: build-demo-apps test-demo-apps bench-demo-apps run-local run-local-mtls

build-demo-apps: ## Build the demo apps (backend, frontend, client, localca) into bin/.
	$(GO) install -trimpath -ldflags "-X main.version=$(DEMO_VERSION)" $(addprefix ./demo-apps/,$(DEMO_APPS))

test-demo-apps: openssl ## Test the demo apps on loopback sockets (race detector, fuzz seeds).
	$(GO) vet ./demo-apps/...
	@unformatted="$$(gofmt -l demo-apps)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -race -count=1 -timeout 5m ./demo-apps/...

bench-demo-apps: ## Benchmark handshake lookup, keep-alive plain vs mTLS, ECDSA vs RSA handshakes.
	$(GO) test -run '^$$' -bench . -benchtime 2s -count=1 ./demo-apps/...

# Both run-local targets start backend and frontend in the background, run the
# client in the foreground and stop everything they started when the client
# ends (after COUNT requests, or Ctrl-C with COUNT=0).
run-local: build-demo-apps ## Plain HTTP on loopback: backend :18081, frontend :18080, client sends COUNT requests.
	@pids=(); trap 'kill $${pids[@]} 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM; \
	USE_MTLS=false LISTEN_HOST=127.0.0.1 PORT=18081 OPS_PORT=19091 $(BIN)/backend & pids+=($$!); \
	USE_MTLS=false LISTEN_HOST=127.0.0.1 PORT=18080 OPS_PORT=19090 BACKEND_URL=http://127.0.0.1:18081 $(BIN)/frontend & pids+=($$!); \
	$(call demo_wait_port,18081); $(call demo_wait_port,18080); \
	USE_MTLS=false $(BIN)/client -url http://127.0.0.1:18080 -count $(COUNT) -interval $(INTERVAL) -concurrency $(CONCURRENCY)

run-local-mtls: build-demo-apps ## mTLS on loopback with a local CA; leaves rotate every ROTATE_EVERY, watch the serials change.
	@rm -rf $(DEMO_RUN_DIR); mkdir -p $(DEMO_RUN_DIR); \
	$(BIN)/localca -dir $(DEMO_RUN_DIR) >/dev/null; \
	pids=(); trap 'kill $${pids[@]} 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM; \
	$(BIN)/localca -dir $(DEMO_RUN_DIR) -every $(ROTATE_EVERY) >$(DEMO_RUN_DIR)/localca.log & pids+=($$!); \
	certs() { echo MTLS_CERT_FILE=$(DEMO_RUN_DIR)/$$1/tls.crt MTLS_KEY_FILE=$(DEMO_RUN_DIR)/$$1/tls.key MTLS_CA_FILE=$(DEMO_RUN_DIR)/$$1/ca.crt; }; \
	env $$(certs backend) LISTEN_HOST=127.0.0.1 PORT=18081 OPS_PORT=19091 \
	  ALLOWED_CLIENTS=spiffe://cluster.local/ns/demo/sa/frontend $(BIN)/backend 2>$(DEMO_RUN_DIR)/backend.log & pids+=($$!); \
	env $$(certs frontend) LISTEN_HOST=127.0.0.1 PORT=18080 OPS_PORT=19090 \
	  ALLOWED_CLIENTS=spiffe://cluster.local/ns/demo/sa/client BACKEND_URL=https://localhost:18081 \
	  $(BIN)/frontend 2>$(DEMO_RUN_DIR)/frontend.log & pids+=($$!); \
	$(call demo_wait_port,18081); $(call demo_wait_port,18080); \
	echo "logs: $(DEMO_RUN_DIR)/{backend,frontend,localca}.log; metrics: http://127.0.0.1:19090/metrics (frontend), :19091 (backend)"; \
	env $$(certs client) $(BIN)/client -url https://localhost:18080 -count $(COUNT) -interval $(INTERVAL) \
	  -concurrency $(CONCURRENCY) 2>$(DEMO_RUN_DIR)/client.log; \
	echo "reloads: backend $$(grep -c '"certificate reloaded"' $(DEMO_RUN_DIR)/backend.log || true)," \
	  "frontend $$(grep -c '"certificate reloaded"' $(DEMO_RUN_DIR)/frontend.log || true)"
