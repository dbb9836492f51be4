# immutable.hosts: every set-up and check goes through this file.
#   make demo   run the main job (site.yml) on lab hosts
#   make test   every check: lint, unit tests on three ansible-core versions (2.16, 2.19, 2.21), sanity, the lab, molecule
#   make venv   create or refresh the virtual environments
#   make ee     the execution environment's build context (ansible-builder), checked
#   make bench  the fleet benchmark against the anchor collections (BENCH_HOSTS=50 for 50 hosts)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT       := $(abspath .)
BUILD      := $(ROOT)/build
COLL       := $(BUILD)/ansible_collections/immutable/hosts
REPORTS    := $(BUILD)/reports
BUILD_HOME := $(BUILD)/home

# The first interpreter of each version that actually runs (pyenv shims exist for versions that are not active).
find_python = $(firstword $(foreach p,$(sort $(wildcard $(HOME)/.pyenv/versions/$(1)*/bin/python$(1) /root/.pyenv/versions/$(1)*/bin/python$(1))) $(shell command -v python$(1) 2>/dev/null),$(shell $(p) -c 'import sys' >/dev/null 2>&1 && echo $(p))))
PY311  := $(or $(call find_python,3.11),$(shell command -v python3 2>/dev/null))
PY313  := $(call find_python,3.13)
PY312  := $(call find_python,3.12)
PY39   := $(call find_python,3.9)

# Debian packages the real-tool tests and the lab need on the machine (the lab image brings its own).
APT_PACKAGES := flatpak ostree rpm e2fsprogs gnupg busybox-static debootstrap systemd-container iproute2 openssh-client zstd openssl shellcheck chromium

VENV     := $(ROOT)/.venv
VENV221  := $(ROOT)/.venv-core221
VENV216  := $(ROOT)/.venv-core216
STAMP    := $(VENV)/.installed
STAMP221 := $(VENV221)/.installed
STAMP216 := $(VENV216)/.installed

.PHONY: help deps venv test demo bench lint units cli ee lab-tests lab-stream-a lab-stream-b molecule molecule-scenarios units-216 units-219 units-221 compile-py39 tree sanity docs collection summary clean

help:
	@sed -n 's/^#   //p' Makefile

# --- environments ------------------------------------------------------------------------------------------------

venv: $(STAMP) $(if $(PY313),$(STAMP221)) $(if $(PY312),$(STAMP216))

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "== Debian packages: all present"; \
	elif [ "$$(id -u)" != 0 ]; then echo "!! not root: cannot install $$missing; tests that need them will skip"; \
	else echo "== apt-get install $$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

$(STAMP): pyproject.toml
	@echo "== venv: $(VENV) (Python $$($(PY311) -c 'import platform; print(platform.python_version())'), ansible-core 2.19)"
	@test -x $(VENV)/bin/python || $(PY311) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' 'ansible-core>=2.19,<2.20'
	@touch $@

$(STAMP216): pyproject.toml
	@echo "== venv: $(VENV216) (Python $$($(PY312) -c 'import platform; print(platform.python_version())'), ansible-core 2.16, the oldest supported)"
	@test -x $(VENV216)/bin/python || $(PY312) -m venv $(VENV216)
	@$(VENV216)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	@# the collection's unit tests and the roles' lab test; the CLI (this package) itself wants ansible-core 2.19
	@$(VENV216)/bin/python -m pip install -q --disable-pip-version-check 'pytest>=8' 'ansible-core>=2.16,<2.17' 'rich>=13' 'ruamel.yaml>=0.18' 'paramiko>=3.2'
	@$(VENV216)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(STAMP221): pyproject.toml
	@echo "== venv: $(VENV221) (Python $$($(PY313) -c 'import platform; print(platform.python_version())'), ansible-core 2.21)"
	@test -x $(VENV221)/bin/python || $(PY313) -m venv $(VENV221)
	@$(VENV221)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(VENV221)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 'ansible-core>=2.21,<2.22'
	@touch $@

# --- checks ------------------------------------------------------------------------------------------------------

test: deps venv
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	@$(MAKE) --no-print-directory lint units cli compile-py39 tree sanity docs collection ee lab-tests
	@$(MAKE) --no-print-directory summary

lint: $(STAMP) tree
	@echo "== ruff"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check --diff plugins tests src tools
	@echo "== changelog fragments (antsibull-changelog lint)"
	@PATH=$(VENV)/bin:$$PATH $(VENV)/bin/antsibull-changelog lint
	@echo "== ansible-lint (production profile, .ansible-lint): the whole repository"
	@PATH=$(VENV)/bin:$$PATH $(VENV)/bin/ansible-lint --nocolor .

tree: $(STAMP)
	@$(VENV)/bin/python tools/collection_tree.py $(BUILD)

units: units-216 units-219 units-221

units-219: $(STAMP) tree
	@echo "== unit tests: ansible-core $$($(VENV)/bin/python -c 'import ansible; print(ansible.__version__)') on Python $$($(VENV)/bin/python -c 'import platform; print(platform.python_version())')"
	@cd $(COLL) && PYTHONPATH=$(BUILD) $(VENV)/bin/python -m pytest -q -p no:cacheprovider --import-mode=importlib \
	    --junitxml=$(REPORTS)/units-core219-py311.xml tests/unit

units-216: tree
ifeq ($(PY312),)
	@echo "!! ================================================================================================ !!"
	@echo "!! Python 3.12 not found (neither python3.12 on PATH nor pyenv's 3.12): ansible-core 2.16 NOT TESTED   !!"
	@echo "!! ================================================================================================ !!"
else
	@$(MAKE) --no-print-directory $(STAMP216)
	@echo "== unit tests: ansible-core $$($(VENV216)/bin/python -c 'import ansible; print(ansible.__version__)') on Python $$($(VENV216)/bin/python -c 'import platform; print(platform.python_version())')"
	@cd $(COLL) && PYTHONPATH=$(BUILD) $(VENV216)/bin/python -m pytest -q -p no:cacheprovider --import-mode=importlib \
	    --junitxml=$(REPORTS)/units-core216-py312.xml tests/unit
endif

units-221: tree
ifeq ($(PY313),)
	@echo "!! ================================================================================================ !!"
	@echo "!! Python 3.13 not found (neither python3.13 on PATH nor pyenv's 3.13): ansible-core 2.21 NOT TESTED   !!"
	@echo "!! ================================================================================================ !!"
else
	@$(MAKE) --no-print-directory $(STAMP221)
	@echo "== unit tests: ansible-core $$($(VENV221)/bin/python -c 'import ansible; print(ansible.__version__)') on Python $$($(VENV221)/bin/python -c 'import platform; print(platform.python_version())')"
	@cd $(COLL) && PYTHONPATH=$(BUILD) $(VENV221)/bin/python -m pytest -q -p no:cacheprovider --import-mode=importlib \
	    --junitxml=$(REPORTS)/units-core221-py313.xml tests/unit
endif

cli: $(STAMP) tree
	@echo "== CLI tests (Python $$($(VENV)/bin/python -c 'import platform; print(platform.python_version())'))"
	@$(VENV)/bin/python -m pytest -q -p no:cacheprovider --junitxml=$(REPORTS)/cli-py311.xml tests/cli

# The lab: contract tests of the rpm-ostree/bootc simulators, the lab's own content and smoke tests, the lab tests
# and the molecule scenarios, then the module tests that need Podman's real Quadlet generator (taken from the lab
# image, which carries podman 5).  Ansible runs one task at a time, so a lab stream keeps about one core busy: the
# lab tests and scenarios run as two streams side by side, each with labs of its own (stream A on <repo>/.lab-a, B on
# <repo>/.lab-b, never the lab `make demo` leaves up in <repo>/.lab with its group_vars; every lab shares .lab's image,
# built once under its lock) and its own share of the session's hosts.
# Test files and scenarios not named for stream A run in stream B.  One ansible-native molecule scenario per role,
# each on a lab of its own (create/destroy through the lab).
MOLECULE_SCENARIOS := os_image flatpak rootless_podman apple_silicon workstation health image_build pull

LAB_A_HOSTS      := silverblue:1-4,bootc:1-2,bootc-only:1-2
LAB_A_TESTS      := test_bootc.py test_os_modules.py test_rollout.py test_content_oci.py test_os_tools.py test_pull.py
LAB_A_MOLECULE   := os_image apple_silicon health
LAB_B_HOSTS      := silverblue:5-8,kinoite:1-1
LAB_B_TESTS      := $(filter-out $(LAB_A_TESTS),$(notdir $(wildcard tests/lab/test_*.py)))
LAB_B_MOLECULE   := $(filter-out $(LAB_A_MOLECULE),$(MOLECULE_SCENARIOS))

lab-tests: $(STAMP) tree
	@echo "== lab streams: A ($(LAB_A_TESTS) $(LAB_A_MOLECULE:%=molecule:%)) and B (contract tests $(LAB_B_TESTS) $(LAB_B_MOLECULE:%=molecule:%)); each stream's lines are prefixed"
	@rc_a=0; rc_b=0; \
	  ( $(MAKE) --no-print-directory lab-stream-a 2>&1 | sed -u 's/^/[A] /' ) & pid_a=$$!; \
	  ( $(MAKE) --no-print-directory lab-stream-b 2>&1 | sed -u 's/^/[B] /' ) & pid_b=$$!; \
	  wait $$pid_a || rc_a=$$?; wait $$pid_b || rc_b=$$?; \
	  echo "== lab streams: A exit $$rc_a, B exit $$rc_b"; test $$rc_a = 0 -a $$rc_b = 0
	@gen=$$(ls -1 .lab/image/*/rootfs/usr/libexec/podman/quadlet 2>/dev/null | head -n1); \
	if [ -z "$$gen" ]; then echo "!! no lab image: Quadlet generator tests not run"; else \
	  echo "== Quadlet modules against the real generator ($$gen)"; \
	  cd $(COLL) && IMMUTABLE_HOSTS_QUADLET_GENERATOR=$(ROOT)/$$gen PYTHONPATH=$(BUILD) $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
	    --import-mode=importlib --junitxml=$(REPORTS)/quadlet-generator.xml tests/unit/plugins/modules/test_quadlet_real.py; fi

lab-stream-a:
	@echo "== lab tests, stream A: $(LAB_A_TESTS)"
	@mkdir -p .lab/image .lab-a && ln -sfn $(ROOT)/.lab/image .lab-a/image
	@LAB_TEST_HOSTS=$(LAB_A_HOSTS) IMMUTABLE_HOSTS_LAB_DIR=$(ROOT)/.lab-a $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
	    --junitxml=$(REPORTS)/lab-a.xml $(LAB_A_TESTS:%=tests/lab/%)
ifeq ($(PY312),)
	@echo "!! Python 3.12 not found: the roles NOT TESTED on ansible-core 2.16"
else
	@echo "== the roles on the oldest supported controller: tests/lab/test_roles.py with ansible-core 2.16"
	@IMMUTABLE_HOSTS_LAB_DIR=$(ROOT)/.lab-a $(VENV216)/bin/python -m pytest -q -p no:cacheprovider \
	    --junitxml=$(REPORTS)/lab-roles-core216.xml tests/lab/test_roles.py
endif
	@$(MAKE) --no-print-directory molecule-scenarios MOLECULE_SCENARIOS="$(LAB_A_MOLECULE)"

lab-stream-b:
	@echo "== contract tests: the rpm-ostree and bootc simulators against the contract"
	@$(VENV)/bin/python -m pytest -q -p no:cacheprovider --junitxml=$(REPORTS)/contract.xml tests/contract
	@echo "== lab tests, stream B: $(LAB_B_TESTS)"
	@mkdir -p .lab/image .lab-b && ln -sfn $(ROOT)/.lab/image .lab-b/image
	@LAB_TEST_HOSTS=$(LAB_B_HOSTS) IMMUTABLE_HOSTS_LAB_DIR=$(ROOT)/.lab-b $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
	    --junitxml=$(REPORTS)/lab-b.xml $(LAB_B_TESTS:%=tests/lab/%)
	@$(MAKE) --no-print-directory molecule-scenarios MOLECULE_SCENARIOS="$(LAB_B_MOLECULE)"

molecule: $(STAMP) tree
	@$(MAKE) --no-print-directory molecule-scenarios

# The streams' own entry points: they run after lab-tests' prerequisites (the venv and the collection tree), never
# remaking them side by side.
molecule-scenarios:
	@for s in $(MOLECULE_SCENARIOS); do echo "== molecule: $$s"; \
	  (cd extensions && PATH=$(VENV)/bin:$$PATH $(VENV)/bin/molecule test -s $$s) || exit 1; done

compile-py39: tree
ifeq ($(PY39),)
	@echo "!! Python 3.9 not found: module code not checked on the oldest target Python"
else
	@echo "== module code compiles, and module_utils import, on the oldest target Python ($$($(PY39) --version))"
	@$(PY39) -c 'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]; print("   %d files compile" % (len(sys.argv) - 1))' \
	    $$(find plugins/module_utils plugins/modules -name '*.py')
	@# What AnsiballZ ships to a host besides our module_utils: ansible's own module_utils under an empty package.
	@rm -rf $(BUILD)/target-py39 && mkdir -p $(BUILD)/target-py39/ansible && touch $(BUILD)/target-py39/ansible/__init__.py
	@cp -r $$($(VENV)/bin/python -c 'import ansible.module_utils, os; print(os.path.dirname(ansible.module_utils.__file__))') \
	    $(BUILD)/target-py39/ansible/module_utils
	@cd $(BUILD) && $(PY39) -I -c 'import importlib, pathlib, sys; sys.path[:0] = [".", "target-py39"]; \
	    base = pathlib.Path("ansible_collections/immutable/hosts/plugins/module_utils"); \
	    names = [".".join(p.relative_to(base).with_suffix("").parts) for p in base.rglob("*.py") if p.name != "__init__.py"]; \
	    [importlib.import_module("ansible_collections.immutable.hosts.plugins.module_utils." + n) for n in names]; \
	    print("   %d module_utils import with the standard library and ansible.module_utils only" % len(names))'
endif

sanity: $(STAMP) tree
	@echo "== ansible-test sanity ($(COLL))"
	@mkdir -p $(BUILD_HOME)/.ansible/test/cache
	@pipver=$$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" $$($(VENV)/bin/python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py | head -n1); \
	  cp tools/get_pip_offline.py $(BUILD_HOME)/.ansible/test/cache/get_pip_$${pipver//./_}.py
	@cd $(COLL) && HOME=$(BUILD_HOME) PATH=$(VENV)/bin:$$PATH $(VENV)/bin/ansible-test sanity --python 3.11 --color no

docs: $(STAMP) tree
	@echo "== ansible-doc renders every module"
	@for m in $$(cd plugins/modules && ls *.py | sed 's/\.py$$//'); do \
	  ANSIBLE_COLLECTIONS_PATH=$(BUILD) $(VENV)/bin/ansible-doc immutable.hosts.$$m > /dev/null || exit 1; echo "   immutable.hosts.$$m"; done
	@echo "== host_state's options are the unit modules' own (tools/host_state_doc.py --check)"
	@$(VENV)/bin/python tools/host_state_doc.py --check

collection: $(STAMP) tree
	@echo "== ansible-galaxy collection build"
	@mkdir -p $(BUILD)/dist
	@cd $(COLL) && $(VENV)/bin/ansible-galaxy collection build --force --output-path $(BUILD)/dist .

# The execution environment's build context (ansible-builder create) with this checkout's collection and CLI, checked;
# building the image needs a reachable registry for its base image, which CI does not have.
ee: $(STAMP) collection
	@echo "== execution environment: ansible-builder create, then tools/check_ee.py"
	@rm -rf $(BUILD)/ee $(BUILD)/ee-inputs && mkdir -p $(BUILD)/ee-inputs
	@cp $(BUILD)/dist/immutable-hosts-$$(sed -n 's/^version: *//p' galaxy.yml).tar.gz $(BUILD)/ee-inputs/immutable-hosts.tar.gz
	@$(VENV)/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w $(BUILD)/ee-inputs . >/dev/null
	@$(VENV)/bin/ansible-builder create -f execution-environment.yml -c $(BUILD)/ee --output-filename Containerfile >/dev/null
	@PATH=$(VENV)/bin:$$PATH $(VENV)/bin/python tools/check_ee.py $(BUILD)/ee

summary:
	@$(VENV)/bin/python tools/test_summary.py $(REPORTS)

# --- the main job --------------------------------------------------------------------------------------------------

demo: deps venv tree
	@$(VENV)/bin/python tools/demo.py

# Fleet benchmark, ours against the anchor collections (never part of make test): BENCH_HOSTS=50 make bench
BENCH_HOSTS ?= 10
bench: deps venv
	@$(VENV)/bin/python bench/run.py --hosts $(BENCH_HOSTS)

clean:
	rm -rf $(BUILD)
