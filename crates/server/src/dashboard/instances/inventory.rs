//! The inventory panels of an instance's page: its processing units and software, each
//! with a delete button and an add form that app.js sends to the API (`data-api`).

use maud::{Markup, html};

use super::field;
use crate::routes::api_types::Instance;

/// `80` → `80`, `0.5` → `0.5` (GB per unit, as the API gives it).
fn gb(memory: f64) -> String {
    let text = format!("{memory:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub fn units(instance: &Instance) -> Markup {
    let id = &instance.id;
    html! {
        section.panel aria-labelledby="units-h" {
            h2 #units-h { "Processing units" }
            @if instance.processing_units.is_empty() {
                p.muted #no-units { "None declared yet. Consumers and admins see what you declare here." }
            } @else {
                div.table-wrap {
                    table.responsive #processing-units {
                        caption.sr-only { "Declared processing units" }
                        thead { tr { th { "Kind" } th { "Vendor" } th { "Model" } th.num { "Memory per unit" } th.num { "Count" } th { span.sr-only { "Actions" } } } }
                        tbody {
                            @for unit in &instance.processing_units {
                                tr data-unit-id=(unit.id) {
                                    td data-label="Kind" { (unit.kind.to_uppercase()) }
                                    td data-label="Vendor" { (unit.vendor) }
                                    td data-label="Model" { (unit.model) }
                                    td.num data-label="Memory per unit" { (gb(unit.memory_gb)) " GB" }
                                    td.num data-label="Count" { (unit.count) }
                                    td.actions data-label="Actions" {
                                        button.danger type="button" data-api={ "DELETE /api/instances/" (id) "/processing-units/" (unit.id) }
                                            data-confirm={ "Remove " (unit.count) " × " (unit.vendor) " " (unit.model) " from the inventory?" }
                                            aria-label={ "Remove " (unit.vendor) " " (unit.model) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form #add-unit .stack data-api={ "POST /api/instances/" (id) "/processing-units" } {
                h3 { "Add a processing unit" }
                div.grid4 {
                    (field("unit-kind", "Kind", None, html! {
                        select #unit-kind name="kind" {
                            option value="gpu" selected { "GPU" }
                            option value="cpu" { "CPU" }
                            option value="npu" { "NPU" }
                            option value="tpu" { "TPU" }
                        }
                    }))
                    (field("unit-vendor", "Vendor", None,
                        html! { input #unit-vendor name="vendor" type="text" maxlength="100" required placeholder="NVIDIA" autocomplete="off"; }))
                    (field("unit-model", "Model", None,
                        html! { input #unit-model name="model" type="text" maxlength="100" required placeholder="RTX 4090" autocomplete="off"; }))
                    (field("unit-memory", "Memory per unit (GB)", None,
                        html! { input #unit-memory name="memory_gb" type="number" min="0.001" max="100000" step="any" required inputmode="decimal" data-kind="int"; }))
                    (field("unit-count", "Count", None,
                        html! { input #unit-count name="count" type="number" min="1" max="1024" step="1" value="1" required inputmode="numeric" data-kind="int"; }))
                }
                p data-error role="alert" {}
                div.row { button type="submit" { "Add unit" } }
            }
        }
    }
}

pub fn software(instance: &Instance) -> Markup {
    let id = &instance.id;
    html! {
        section.panel aria-labelledby="software-h" {
            h2 #software-h { "Software" }
            @if instance.software.is_empty() {
                p.muted #no-software { "None declared yet: the engine (vllm 0.6.3), drivers (CUDA 12.4)…" }
            } @else {
                div.table-wrap {
                    table.responsive #software {
                        caption.sr-only { "Declared software" }
                        thead { tr { th { "Name" } th { "Version" } th { span.sr-only { "Actions" } } } }
                        tbody {
                            @for sw in &instance.software {
                                tr data-software-id=(sw.id) {
                                    td data-label="Name" { (sw.name) }
                                    td data-label="Version" { code { (sw.version) } }
                                    td.actions data-label="Actions" {
                                        button.danger type="button" data-api={ "DELETE /api/instances/" (id) "/software/" (sw.id) }
                                            data-confirm={ "Remove " (sw.name) " " (sw.version) " from the inventory?" }
                                            aria-label={ "Remove " (sw.name) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form #add-software .stack data-api={ "POST /api/instances/" (id) "/software" } {
                h3 { "Add software" }
                div.grid2 {
                    (field("software-name", "Name", None,
                        html! { input #software-name name="name" type="text" maxlength="100" required placeholder="vllm" autocomplete="off"; }))
                    (field("software-version", "Version", None,
                        html! { input #software-version name="version" type="text" maxlength="64" required placeholder="0.6.3" autocomplete="off"; }))
                }
                p data-error role="alert" {}
                div.row { button type="submit" { "Add software" } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_without_trailing_zeros() {
        assert_eq!(gb(80.0), "80");
        assert_eq!(gb(0.5), "0.5");
        assert_eq!(gb(24.576), "24.576");
    }
}
