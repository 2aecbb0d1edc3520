# Kubernetes: kustomize manifests in deploy/k8s, rendered from the repository's env files by
# hundi.deploy.kube (included by the Makefile, which defines BIN and the venv target).
#   make backend-namespace frontend-namespace cassandra kairosdb hundi-api-deploy collectors \
#        grafana jupyter-deploy            OVERLAY=dev|prod, DRY_RUN=1 prints instead of applying

OVERLAY ?= dev
COMPONENT ?=
KUSTOMIZE_VERSION := v5.7.1
TOOLS_BIN := $(CURDIR)/.tools/bin
# $KUSTOMIZE (a kustomize of your own) wins over the one `make k8s-tools` installs.
export KUSTOMIZE ?=
KUBE = $(BIN)/python -m hundi.deploy.kube
# The env files are read from ENV_DIR (the Makefile's, default: the repository root); the
# wunder/* images from IMAGE_REGISTRY when set (`make images IMAGE_REGISTRY=... && docker push`).
K8S_ENV = --env-dir $(or $(ENV_DIR),.) $(if $(IMAGE_REGISTRY),--image-registry $(IMAGE_REGISTRY))
K8S_DEPS = venv $(if $(KUSTOMIZE),,$(TOOLS_BIN)/kustomize)

.PHONY: k8s-tools k8s-render k8s-validate k8s-pins backend-namespace frontend-namespace cassandra kairosdb hundi-api-deploy collectors grafana jupyter-deploy

$(TOOLS_BIN)/kustomize:
	@command -v go >/dev/null || { echo "go is needed to install kustomize (or set KUSTOMIZE=/path/to/kustomize)" >&2; exit 1; }
	GOBIN=$(TOOLS_BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

k8s-tools: $(TOOLS_BIN)/kustomize ## Install kustomize v5.7.1 into .tools/bin (needs go; or set KUSTOMIZE=path)

k8s-render: $(K8S_DEPS) ## Print the manifests of OVERLAY=dev|prod from the env files (COMPONENT=cassandra... for one)
	@$(KUBE) render --overlay $(OVERLAY) $(K8S_ENV) $(if $(COMPONENT),--component $(COMPONENT))

k8s-validate: $(K8S_DEPS) ## Render every overlay from the *.example env files and validate each object offline
	$(KUBE) validate --examples

k8s-pins: $(K8S_DEPS) ## Fail while an image of the prod overlay is not pinned by digest (scripts/pin-images.sh pins them)
	$(KUBE) pins --overlay prod --examples

backend-namespace: $(K8S_DEPS) ## Namespace backend with its default-deny NetworkPolicies (kubectl apply)
	$(KUBE) apply backend-namespace --overlay $(OVERLAY) $(K8S_ENV)

frontend-namespace: $(K8S_DEPS) ## Namespace frontend with its default-deny NetworkPolicies (kubectl apply)
	$(KUBE) apply frontend-namespace --overlay $(OVERLAY) $(K8S_ENV)

cassandra: $(K8S_DEPS) ## Cassandra StatefulSet (3 nodes in prod, 1 in dev) and its bootstrap Job (schema, roles); logins from .secret.cassandra*.env
	$(KUBE) apply cassandra --overlay $(OVERLAY) $(K8S_ENV)

kairosdb: $(K8S_DEPS) ## KairosDB Deployment on the Cassandra datastore (image wunder/kairosdb)
	$(KUBE) apply kairosdb --overlay $(OVERLAY) $(K8S_ENV)

hundi-api-deploy: $(K8S_DEPS) ## hundi's HTTP API (hundi serve) for Grafana, in the backend namespace
	$(KUBE) apply hundi-api --overlay $(OVERLAY) $(K8S_ENV)

collectors: $(K8S_DEPS) ## Collector StatefulSet; pod N records shard N of deploy/k8s/base/collectors/collectors.yaml
	$(KUBE) apply collectors --overlay $(OVERLAY) $(K8S_ENV)

grafana: $(K8S_DEPS) ## Grafana with the hundi datasource and dashboards, admin password from .secret.grafana.env
	$(KUBE) apply grafana --overlay $(OVERLAY) $(K8S_ENV)

jupyter-deploy: $(K8S_DEPS) ## JupyterLab with hundi in the frontend namespace, token from .secret.jupyter.env
	$(KUBE) apply jupyter --overlay $(OVERLAY) $(K8S_ENV)
