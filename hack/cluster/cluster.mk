# Local control plane (hack/cluster): included by the top-level Makefile.
CLUSTER := PYTHONPATH=hack $(PY) -m cluster

.PHONY: cluster-tools cluster-up cluster-down cluster-env cluster-status

cluster-tools: ## Build kube-apiserver & co., etcd, kwok, helm, Karpenter (cached); prometheus
	$(CLUSTER) tools

cluster-up: ## Start the local cluster (apiserver, Karpenter launching KWOK GPU nodes, Prometheus)
	$(CLUSTER) up

cluster-down: ## Stop exactly the processes cluster-up started and remove its state
	$(CLUSTER) down

cluster-env: ## Print export lines: eval "$$(make -s cluster-env)"
	@$(CLUSTER) env

cluster-status: ## Endpoints of the running cluster and which processes are alive
	@$(CLUSTER) status
