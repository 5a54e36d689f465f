# pyrt: every job a fresh Debian/Ubuntu machine needs, as root.
#
#   make demo    install everything, build the Go hello-world bundle, run it (the main job)
#   make test    install everything, build the bundles, run the test suite
#   make bench   pyrt beside runc: run, create+start+delete, state; network setup, HTTP ratios
#   make image-demo  the seed's path: podman build the Containerfile, then podman save | pyrt unpack |
#                pyrt run -p 8080:8080, and podman --runtime pyrt run -p 8080:8080
#
# pyrt is installed into a virtual environment ($(VENV)) and started through $(BIN), a
# launcher that names the venv's interpreter with -IS (no site scan: ~15 ms per call saved).

PREFIX   ?= /opt/pyrt
VENV     := $(PREFIX)/venv
PY       := $(VENV)/bin/python3
BIN      ?= /usr/local/bin/pyrt
SYSPY    ?= /usr/bin/python3
GO       ?= go
PKGS     := build-essential python3-venv python3-dev libcap-dev libseccomp-dev busybox-static \
            golang-go curl runc iproute2 iptables nftables qemu-system-x86 golang-github-opencontainers-specs-dev \
            podman containerd uidmap umoci containernetworking-plugins catatonit strace
BUSYBOX  := /bin/busybox
HELLO    := bundles/hello-world/rootfs/hello
BUSYBOX_BUNDLE := bundles/busybox/rootfs/bin/busybox

.PHONY: all deps install dev native bundles demo image-demo test test-native test-cgroup2 cgroup2-tests bench bench-unpack \
	lint clean

all: install bundles

# --- installing ---------------------------------------------------------------------------

deps:
	@if ! dpkg -s $(PKGS) >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(PKGS); \
	fi

install: deps
	test -x $(PY) || $(SYSPY) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[test]'
	$(PY) -m pip install --quiet ruff
	site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("platlib"))') && \
	printf '#!%s -IS\nimport sys\nsys.path.append("%s")\nfrom pyrt.cli import entry\nentry()\n' \
		'$(PY)' "$$site" > $(BIN).tmp
	chmod 755 $(BIN).tmp && mv $(BIN).tmp $(BIN)
	$(BIN) --version

# For development: the launcher runs the working tree (edits are live); `make native` rebuilds
# pyrt/_native*.so and pyrt/pyrt-init in place after a change under native/.
dev: deps
	test -x $(PY) || $(SYSPY) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]' ruff
	site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("platlib"))') && \
	printf '#!%s -IS\nimport sys\nsys.path[:0] = ["%s"]\nsys.path.append("%s")\nfrom pyrt.cli import entry\nentry()\n' \
		'$(PY)' "$(CURDIR)" "$$site" > $(BIN).tmp
	chmod 755 $(BIN).tmp && mv $(BIN).tmp $(BIN)

native:
	$(PY) setup.py -q build_ext --inplace

# --- bundles --------------------------------------------------------------------------------

bundles: $(HELLO) $(BUSYBOX_BUNDLE)

# The flagship: one static Go binary in an otherwise empty root (plus mount points).
$(HELLO): bundles/hello-world/main.go bundles/hello-world/go.mod
	mkdir -p bundles/hello-world/rootfs/proc bundles/hello-world/rootfs/dev bundles/hello-world/rootfs/sys \
		bundles/hello-world/rootfs/tmp
	cd bundles/hello-world && CGO_ENABLED=0 GOCACHE=$(CURDIR)/build/go-cache $(GO) build -trimpath -ldflags='-s -w' -o rootfs/hello .

# Busybox for tests: Debian's static busybox and its applets as relative symlinks.
$(BUSYBOX_BUNDLE): $(BUSYBOX)
	rm -rf bundles/busybox/rootfs
	mkdir -p bundles/busybox/rootfs/bin bundles/busybox/rootfs/proc bundles/busybox/rootfs/dev \
		bundles/busybox/rootfs/sys bundles/busybox/rootfs/tmp bundles/busybox/rootfs/etc bundles/busybox/rootfs/root
	cp $(BUSYBOX) bundles/busybox/rootfs/bin/busybox
	for applet in $$($(BUSYBOX) --list); do \
		[ "$$applet" = busybox ] || ln -s busybox bundles/busybox/rootfs/bin/$$applet; done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > bundles/busybox/rootfs/etc/passwd
	printf 'root:x:0:\nnogroup:x:65534:\n' > bundles/busybox/rootfs/etc/group

# --- the two jobs of the README --------------------------------------------------------------

demo: install bundles
	@echo "pyrt: serving bundles/hello-world; try: curl http://127.0.0.1:8080/   (Ctrl-C stops it)"
	$(BIN) run -p 8080:8080 bundles/hello-world

# The seed's `docker build` + `docker run -p 8080:8080`, offline: podman builds
# bundles/hello-world/Containerfile; the image runs through `pyrt unpack` + `pyrt run -p`, then
# through `podman --runtime pyrt run -p`. Private podman store and network, all removed at the end.
image-demo: install bundles
	$(PY) tools/image_demo.py --pyrt $(BIN)

# The suite runs twice: against pyrt (with the differential tests, pyrt beside runc 1.5), then
# against the oracle (PYRT_BIN=runc: ../shared/bin/runc-1.5 beside the clone, or $$SHARED_BIN, when
# present; else runc on $$PATH) without the pyrt-only and differential tests.
test: install bundles test-native
	$(PY) -m ruff check pyrt tests bench
	$(PY) -P -m pytest -q -m 'not cgroup2' tests
	PYRT_BIN=runc $(PY) -P -m pytest -q -m 'not pyrt_only and not differential and not cgroup2' tests
	$(MAKE) --no-print-directory cgroup2-tests

# pyrt-init's own tests (no root, no container): path resolution inside a root, the plan reader;
# built with the address and undefined-behaviour sanitizers.
test-native:
	mkdir -p build
	$(CC) -O1 -g -Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=all -o build/test-init \
		native/init/tests/test_init.c native/init/paths.c native/init/plan.c
	ASAN_OPTIONS=detect_leaks=0 build/test-init   # the plan lives until execve: never freed

# The tests that need real cgroup v2 limits (marker cgroup2), for pyrt and then runc: directly
# on a host whose cgroup2 tree has controllers, else in one boot of a throw-away VM with a pure
# cgroup v2 kernel (tools/run-in-vm.sh; Python runs ~20x slower there).
CGROUP2_TESTS := $(PY) -P -m pytest -q -m cgroup2 tests && \
	PYRT_BIN=runc $(PY) -P -m pytest -q -m 'cgroup2 and not pyrt_only and not differential' tests
# The oracle's directory (runc 1.5), shared into the VM at its own path: the guest's /tmp is its own.
SHARED_BIN ?= $(realpath $(CURDIR)/../shared/bin)
test-cgroup2: install bundles cgroup2-tests
cgroup2-tests:
	@if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then \
		$(CGROUP2_TESTS); \
	else \
		PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 SHARED_BIN=$(SHARED_BIN) \
			tools/run-in-vm.sh $(if $(SHARED_BIN),-v $(SHARED_BIN)) sh -c "$(CGROUP2_TESTS)"; \
	fi

bench: install bundles
	$(PY) bench/bench.py
	$(PY) bench/network.py

# pyrt unpack beside umoci unpack on a ~100 MB image made from the host's files
bench-unpack: install
	$(PY) bench/unpack.py --pyrt $(BIN)

lint:
	$(PY) -m ruff check pyrt tests bench

clean:
	rm -rf build *.egg-info pyrt/_native*.so pyrt/_seccomp*.so pyrt/pyrt-init bundles/*/rootfs
