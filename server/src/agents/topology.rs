//! The customer's network as its agents see it through LLDP: known devices
//! and neighbours seen only by name, the links between them, and how many
//! cases are open on each device. Served as JSON by the API and drawn as SVG
//! by the console.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::auth::{Action, Principal};
use crate::error::{Error, Result};
use crate::store::Store;

/// A node of the topology graph: a known device, or a neighbour only seen
/// through LLDP.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyNode {
    /// Stable id within the graph: `device:<id>` or `lldp:<name>`.
    pub id: String,
    pub name: String,
    pub device_id: Option<i64>,
    pub model: Option<String>,
    /// Open (not resolved or closed) cases on the device.
    pub open_cases: i64,
}

/// A link: local port to remote port.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyEdge {
    pub from: String,
    pub to: String,
    pub local_port: String,
    pub remote_port: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyGraph {
    pub organization_id: i64,
    pub nodes: Vec<TopologyNode>,
    pub edges: Vec<TopologyEdge>,
}

/// The topology graph of one organisation, as `who` may see it.
pub async fn graph(store: &Store, who: &Principal, id: i64) -> Result<TopologyGraph> {
    who.require(Action::ReadDirectory)?;
    if !who.sees_organization(Some(id)) || store.organization(id).await?.is_none() {
        return Err(Error::not_found(format!("organization {id}")));
    }
    let devices = store.devices(Some(id), 10_000).await?;
    let open: BTreeMap<i64, i64> = store.open_fault_counts(id).await?.into_iter().collect();
    let links = store.topology_links(id).await?;
    let mut nodes: BTreeMap<String, TopologyNode> = BTreeMap::new();
    // Device lookups: by (agent, target) for the local end, by name for the far end.
    let mut by_target = BTreeMap::new();
    let mut by_name = BTreeMap::new();
    for d in &devices {
        let node = TopologyNode {
            id: format!("device:{}", d.id),
            name: d.name.clone(),
            device_id: Some(d.id),
            model: Some(d.model.clone()),
            open_cases: open.get(&d.id).copied().unwrap_or(0),
        };
        if let (Some(a), Some(t)) = (d.agent_id, &d.agent_target) {
            by_target.insert((a, t.clone()), node.id.clone());
        }
        by_name.insert(d.name.to_lowercase(), node.id.clone());
        nodes.insert(node.id.clone(), node);
    }
    let mut edges = Vec::new();
    for l in links {
        let from = match by_target.get(&(l.agent_id, l.device.clone())) {
            Some(id) => id.clone(),
            None => {
                let id = format!("lldp:{}", l.device);
                nodes.entry(id.clone()).or_insert_with(|| TopologyNode {
                    id: id.clone(),
                    name: l.device.clone(),
                    device_id: None,
                    model: None,
                    open_cases: 0,
                });
                id
            }
        };
        let far = l
            .remote_sys_name
            .clone()
            .or(l.remote_chassis_id.clone())
            .unwrap_or_else(|| "unknown".into());
        let to = match by_name.get(&far.to_lowercase()) {
            Some(id) => id.clone(),
            None => {
                let id = format!("lldp:{far}");
                nodes.entry(id.clone()).or_insert_with(|| TopologyNode {
                    id: id.clone(),
                    name: far.clone(),
                    device_id: None,
                    model: None,
                    open_cases: 0,
                });
                id
            }
        };
        edges.push(TopologyEdge {
            from,
            to,
            local_port: l.local_port,
            remote_port: l.remote_port,
        });
    }
    Ok(TopologyGraph {
        organization_id: id,
        nodes: nodes.into_values().collect(),
        edges,
    })
}
