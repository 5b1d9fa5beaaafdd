# One Compute Engine VM for vm-creator, and the one firewall rule that lets its owner in.

resource "google_compute_instance" "vm" {
  name         = var.name
  zone         = var.zone
  machine_type = var.machine_type
  labels       = local.labels
  tags         = [var.name, "vmbot"]
  metadata     = local.metadata

  desired_status = var.desired_status
  # Stopping is how machine type changes are applied; vm-creator stops VMs on request anyway.
  allow_stopping_for_update = true

  boot_disk {
    auto_delete = true

    initialize_params {
      image  = local.image
      size   = var.disk_gb
      type   = var.disk_type
      labels = local.labels
    }
  }

  network_interface {
    network    = var.network
    subnetwork = var.subnetwork == "" ? null : var.subnetwork

    dynamic "access_config" {
      for_each = var.public_ip ? [1] : []
      content {
        # An ephemeral address: it goes away with the VM and changes across stop/start.
      }
    }
  }

  dynamic "guest_accelerator" {
    for_each = local.attach_gpu ? [1] : []
    content {
      type  = var.gpu_type
      count = var.gpu_count
    }
  }

  scheduling {
    on_host_maintenance = local.on_host_maintenance
    provisioning_model  = local.provisioning_model
    preemptible         = var.spot
    automatic_restart   = local.automatic_restart

    instance_termination_action = local.termination_action

    # The TTL backstop: vm-creator's beat job destroys the VM on time, and should it not (the
    # worker is down, the job is lost), Compute Engine deletes it itself.
    dynamic "max_run_duration" {
      for_each = local.max_run_seconds > 0 ? [local.max_run_seconds] : []
      content {
        seconds = max_run_duration.value
      }
    }
  }

  shielded_instance_config {
    enable_secure_boot          = !local.has_gpu
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  lifecycle {
    # Compute Engine resolves the family to a concrete image at creation; a newer image in the
    # family must not replace a running VM.
    ignore_changes = [boot_disk[0].initialize_params[0].image]
  }
}

resource "google_compute_firewall" "access" {
  name        = local.firewall_name
  network     = var.network
  description = "vm-creator: ${upper(local.access.name)} to ${var.name} from the configured source ranges only."
  direction   = "INGRESS"
  priority    = 1000

  allow {
    protocol = "tcp"
    ports    = [local.access.port]
  }

  source_ranges = var.source_ranges
  target_tags   = [var.name]
}
