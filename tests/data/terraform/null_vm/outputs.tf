output "instance_id" {
  value = null_resource.vm.id
}

output "name" {
  value = var.name
}

output "zone" {
  value = var.zone
}

output "status" {
  value = null_resource.power.triggers.status
}

output "internal_ip" {
  value = "10.128.0.${parseint(substr(sha1(var.name), 0, 2), 16) % 250 + 2}"
}

output "external_ip" {
  value = var.public_ip ? "203.0.113.${parseint(substr(sha1(var.name), 0, 2), 16) % 250 + 2}" : null
}

output "labels" {
  value = local.labels
}

output "firewall" {
  value = local.firewall_name
}

output "inputs" {
  value = {
    project        = var.project
    name           = var.name
    zone           = var.zone
    machine_type   = var.machine_type
    image_family   = var.image_family
    image_project  = var.image_project
    os_family      = var.os_family
    disk_gb        = var.disk_gb
    disk_type      = var.disk_type
    network        = var.network
    subnetwork     = var.subnetwork
    public_ip      = var.public_ip
    labels         = var.labels
    ssh_keys       = var.ssh_keys
    startup_script = var.startup_script
    gpu_type       = var.gpu_type
    gpu_count      = var.gpu_count
    spot           = var.spot
    max_run_hours  = var.max_run_hours
    source_ranges  = var.source_ranges
    desired_status = var.desired_status
  }
}
