# Everything the resources derive from the variables, in one place and from variables only, so
# the derivations can be checked with a plain `terraform plan` and no provider.

locals {
  # Public image families and the projects that publish them, by family-name prefix.
  image_projects = {
    "ubuntu-"       = "ubuntu-os-cloud"
    "debian-"       = "debian-cloud"
    "rocky-linux-"  = "rocky-linux-cloud"
    "centos-"       = "centos-cloud"
    "rhel-"         = "rhel-cloud"
    "cos-"          = "cos-cloud"
    "windows-"      = "windows-cloud"
    "sles-"         = "suse-cloud"
    "fedora-coreos" = "fedora-coreos-cloud"
  }
  inferred_image_project = one([
    for prefix, project in local.image_projects : project
    if substr(var.image_family, 0, length(prefix)) == prefix
  ])
  image_project = var.image_project != "" ? var.image_project : coalesce(local.inferred_image_project, var.project)
  image         = "projects/${local.image_project}/global/images/family/${var.image_family}"

  windows = var.os_family == "windows"

  # managed-by is ours: a caller's label cannot override it, or reconcile would lose the VM.
  labels = merge(var.labels, { "managed-by" = "vmbot" })

  metadata = merge(
    length(var.ssh_keys) > 0 ? { "ssh-keys" = join("\n", var.ssh_keys) } : {},
    var.startup_script == "" ? {} : (
      local.windows
      ? { "windows-startup-script-ps1" = var.startup_script }
      : { "startup-script" = var.startup_script }
    ),
  )

  # Machine families whose GPUs come with the machine type; attaching more is an API error.
  machine_family = split("-", var.machine_type)[0]
  bundled_gpu    = contains(["a2", "a3", "a4", "g2", "g4"], local.machine_family)
  attach_gpu     = var.gpu_type != "" && var.gpu_count > 0 && !local.bundled_gpu
  has_gpu        = local.bundled_gpu || local.attach_gpu

  # GPUs cannot live-migrate and Spot VMs are never migrated, so both stop on host maintenance.
  on_host_maintenance = local.has_gpu || var.spot ? "TERMINATE" : "MIGRATE"
  provisioning_model  = var.spot ? "SPOT" : "STANDARD"
  automatic_restart   = !var.spot
  max_run_seconds     = floor(var.max_run_hours * 3600)
  # What Compute Engine does at the end of a Spot VM's life or of max_run_duration: delete it,
  # so an instance that outlives vm-creator's own TTL job does not keep costing money.
  termination_action = var.spot || local.max_run_seconds > 0 ? "DELETE" : null

  access = local.windows ? { name = "rdp", port = "3389" } : { name = "ssh", port = "22" }
  # Firewall names share the 63-character limit with instance names.
  firewall_name = (
    length(var.name) <= 58
    ? "${var.name}-${local.access.name}"
    : "${substr(var.name, 0, 49)}-${substr(sha1(var.name), 0, 8)}-${local.access.name}"
  )
}
