output "instance_id" {
  description = "Compute Engine's numeric id of the instance."
  value       = google_compute_instance.vm.instance_id
}

output "name" {
  description = "Instance name."
  value       = google_compute_instance.vm.name
}

output "zone" {
  description = "Zone the instance lives in."
  value       = google_compute_instance.vm.zone
}

output "status" {
  description = "RUNNING, TERMINATED (stopped), ... as Compute Engine reports it."
  value       = google_compute_instance.vm.current_status
}

output "internal_ip" {
  description = "Address on the VPC network."
  value       = google_compute_instance.vm.network_interface[0].network_ip
}

output "external_ip" {
  description = "Ephemeral public address, or null when public_ip is false."
  value       = try(google_compute_instance.vm.network_interface[0].access_config[0].nat_ip, null)
}

output "labels" {
  description = "Labels on the instance, managed-by=vmbot among them."
  value       = google_compute_instance.vm.labels
}

output "firewall" {
  description = "Name of the firewall rule that admits SSH or RDP."
  value       = google_compute_firewall.access.name
}

output "inputs" {
  description = "The variables this state was applied with, so any worker can stop, start or destroy the VM."
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
