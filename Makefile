# gpuforge: the two commands are `make lab-site` (the main job) and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PLAYBOOKS := site.yml $(wildcard playbooks/*.yml)
LAB_HOSTS ?= 3
LAB_GPU_HOSTS ?= 1
# Molecule scenarios and lab test modules run this many at a time (they wait on containers and
# harnesses more than on the CPU; each has hosts and names of its own).
MOLECULE_JOBS ?= 3
LAB_JOBS ?= 2
# The harness test modules, 2 at a time (each worker its own control plane).
K8S_JOBS ?= 2
# Each stage of `make test` is timed (scripts/stage.sh; .ci/run prints the table).
STAGE := scripts/stage.sh

.PHONY: build lab-artifacts help bootstrap lab-site lab-up lab-down test unit lint syntax k8s-build k8s-tests k8s-up k8s-down molecule lab-tests image bench bench-k8s gpu-check clean

help:
	@echo "make lab-site   install, start the lab, converge site.yml against it, print a summary"
	@echo "make test       unit tests, lint, syntax checks, Kubernetes harness tests, Molecule scenarios, lab tests"
	@echo "make k8s-up     start the Kubernetes test harness (control plane on loopback, kwok GPU nodes)"
	@echo "make bench      time site.yml on 3 and 12 lab hosts (writes artifacts/bench.json)"
	@echo "make gpu-check  on a real GPU host: GPU facts vs nvidia-smi, driver checks (artifacts/gpu-check.json)"

bootstrap:
	@bash scripts/bootstrap.sh

# bookworm: every lab host; trixie: the second Debian release some Molecule platforms run.
image: bootstrap
	$(STAGE) image-bookworm gpuforge lab image
	$(STAGE) image-trixie gpuforge lab image --release trixie

lab-up: bootstrap
	gpuforge lab up --hosts $(LAB_HOSTS) --gpu-hosts $(LAB_GPU_HOSTS)

lab-down: bootstrap
	gpuforge lab down

# The main job: everything from a bare Debian machine to a converged lab.
lab-site: lab-up k8s-build
	gpuforge run site.yml -i inventories/lab --summary artifacts/site-summary.json --junit artifacts/site-junit.xml

# The checks beside the builds (both cores busy; each output line names its stage), then the harness
# tests (a control plane per worker, timing-sensitive waits), Molecule and the lab tests, each stage
# with its own workers: Molecule beside the lab tests measured 220 s slower than one after the other
# (docs/performance.md, "CI time").
test: bootstrap
	GPUFORGE_STAGE_PREFIX=1 $(MAKE) -j6 unit lint syntax k8s-build image lab-artifacts
	$(MAKE) k8s-tests
	$(MAKE) molecule
	$(MAKE) lab-tests

# The slow artefacts side by side: the Go builds (CPU) and the lab images (network, disk).
build: bootstrap
	$(MAKE) -j3 k8s-build image lab-artifacts

# What Molecule scenarios build from Go modules on the controller (containerd 2.2's release archive,
# the NVIDIA toolkit's packages and signed mirror; cached): built here once, beside the Kubernetes
# build, so that no scenario waits on a compile. The scenarios' prepare steps find them cached.
lab-artifacts: bootstrap
	$(STAGE) lab-artifacts bash -c 'tests/builds/containerd_release.sh >/dev/null && molecule/nvidia_container_toolkit/build_lab_artifacts.sh >/dev/null'

unit:
	$(STAGE) unit pytest -q tests/unit

lint:
	$(STAGE) yamllint yamllint --strict .
	$(STAGE) ansible-lint ansible-lint --profile production

syntax:
	@$(STAGE) syntax bash -c 'for p in $(PLAYBOOKS); do echo "syntax-check $$p"; ansible-playbook --syntax-check -i inventories/lab "$$p" || exit 1; done'

# Kubernetes built from its Go modules into ~/.cache/gpuforge/k8s/<version>/bin (no-op when cached).
k8s-build: bootstrap
	$(STAGE) k8s-build bash tests/k8s/build.sh

# A real control plane on 127.0.0.1 with kwok nodes mirroring tests/k8s/nodes.yml.
k8s-tests: k8s-build
	$(STAGE) k8s-tests pytest -v --durations=15 -n $(K8S_JOBS) --dist loadfile tests/k8s

k8s-up: k8s-build
	gpuforge lab k8s up

k8s-down: bootstrap
	gpuforge lab k8s down

molecule: image
	$(STAGE) molecule pytest -v --durations=20 -n $(MOLECULE_JOBS) --dist load tests/molecule

lab-tests: image
	$(STAGE) lab-tests pytest -v --durations=20 -n $(LAB_JOBS) --dist loadfile tests/lab

# On a real GPU host only (not part of `make test`): facts module vs nvidia-smi, driver checks.
gpu-check:
	python3 tests/gpu/check_real_gpu.py

bench: image
	python scripts/benchmark.py --sizes 3 12 --runs 3 --output artifacts/bench.json

# Start/stop of the Kubernetes harness, median of 5 (writes artifacts/bench-k8s.json).
bench-k8s: k8s-build
	python scripts/benchmark_k8s.py --runs 5 --output artifacts/bench-k8s.json

clean:
	-gpuforge lab down
	-gpuforge lab k8s down
	-podman volume rm gpuforge-apt-nvidia_driver
	rm -rf artifacts
