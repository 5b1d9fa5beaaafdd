resource "null_resource" "vm" {
  triggers = {
    name                = var.name
    zone                = var.zone
    machine_type        = var.machine_type
    image               = local.image
    disk                = "${var.disk_gb}GB ${var.disk_type}"
    labels              = jsonencode(local.labels)
    metadata            = jsonencode(local.metadata)
    gpu                 = local.attach_gpu ? "${var.gpu_count}x${var.gpu_type}" : ""
    on_host_maintenance = local.on_host_maintenance
    provisioning_model  = local.provisioning_model
    max_run_seconds     = local.max_run_seconds
    termination_action  = coalesce(local.termination_action, "none")
    firewall            = "${local.firewall_name} ${local.access.port} ${join(",", var.source_ranges)}"
  }

  provisioner "local-exec" {
    # Never interpolate inputs into the command; the failure message is fixed text.
    command = (
      local.machine_family == "broken"
      ? "echo 'ZONE_RESOURCE_POOL_EXHAUSTED: no capacity for this machine type' >&2; exit 1"
      : "true"
    )
  }
}

resource "null_resource" "power" {
  triggers = {
    instance = null_resource.vm.id
    status   = var.desired_status
  }
}
