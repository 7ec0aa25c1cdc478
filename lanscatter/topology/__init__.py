"""Topology: the site tree in YAML, its validation and the deployment plan derived from it.

    topo = load_topology(Path("site-tree.yaml"))     # raises TopologyError listing every problem
    plan = derive_plan(topo)                          # or derive_plan(topo, local=True, workdir=...)
    plan.host("gw-b").upstream, plan.site_masters(), plan.link_map
"""

from lanscatter.topology.derive import DatasetPlan, DeploymentPlan, HostPlan, SitePlan, derive_plan
from lanscatter.topology.model import SecretRef, Topology
from lanscatter.topology.problems import Problem, TopologyError
from lanscatter.topology.secret import resolve_secret
from lanscatter.topology.validate import load_topology

__all__ = [
    "DatasetPlan", "DeploymentPlan", "HostPlan", "Problem", "SecretRef", "SitePlan", "Topology",
    "TopologyError", "derive_plan", "load_topology", "resolve_secret",
]
