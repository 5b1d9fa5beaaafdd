# Inputs for one vm-creator VM. vm-creator writes them to vmbot.auto.tfvars.json in the VM's
# working directory; every value has already passed the catalog and policy, and these checks
# are the last line of defence, not the first.

variable "project" {
  description = "GCP project that owns the VM."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project))
    error_message = "The project must be a GCP project id: 6-30 lower-case letters, digits or hyphens."
  }
}

variable "name" {
  description = "Instance name, unique in the project; also the network tag the firewall targets."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.name))
    error_message = "The name must be 1-63 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "zone" {
  description = "Compute Engine zone, e.g. us-central1-b."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.zone))
    error_message = "The zone must look like us-central1-b."
  }
}

variable "machine_type" {
  description = "Machine type, e.g. e2-standard-2."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[-a-z0-9]+$", var.machine_type))
    error_message = "The machine type must look like e2-standard-2."
  }
}

variable "image_family" {
  description = "Public image family, e.g. ubuntu-2204-lts or windows-2022."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,62}$", var.image_family))
    error_message = "The image family must be lower-case letters, digits and hyphens."
  }
}

variable "image_project" {
  description = "Project that publishes the image family; empty to infer it from the family name."
  type        = string
  default     = ""

  validation {
    condition     = var.image_project == "" || can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.image_project))
    error_message = "The image project must be empty or a GCP project id."
  }
}

variable "os_family" {
  description = "linux or windows: picks the startup-script key and the firewall port (SSH or RDP)."
  type        = string
  default     = "linux"

  validation {
    condition     = contains(["linux", "windows"], var.os_family)
    error_message = "The OS family must be linux or windows."
  }
}

variable "disk_gb" {
  description = "Boot disk size in GB."
  type        = number
  default     = 20

  validation {
    condition     = var.disk_gb >= 10 && var.disk_gb <= 65536 && floor(var.disk_gb) == var.disk_gb
    error_message = "The disk size must be a whole number of GB from 10 to 65536."
  }
}

variable "disk_type" {
  description = "Boot disk type."
  type        = string
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd", "pd-extreme", "hyperdisk-balanced"], var.disk_type)
    error_message = "The disk type must be pd-standard, pd-balanced, pd-ssd, pd-extreme or hyperdisk-balanced."
  }
}

variable "network" {
  description = "VPC network for the VM and its firewall rule."
  type        = string
  default     = "default"
}

variable "subnetwork" {
  description = "Subnetwork; empty for the network's automatic subnet in the VM's region."
  type        = string
  default     = ""
}

variable "public_ip" {
  description = "Give the VM an ephemeral external IP. Without one, reach it through IAP."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels: owner, request and (when known) expiry. managed-by=vmbot is always added."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.labels :
      can(regex("^[a-z][-_a-z0-9]{0,62}$", key)) && can(regex("^[-_a-z0-9]{0,63}$", value))
    ])
    error_message = "Label keys and values must be lower-case letters, digits, - or _ (at most 63), keys starting with a letter."
  }

  validation {
    condition     = length(var.labels) <= 60
    error_message = "At most 60 labels."
  }
}

variable "ssh_keys" {
  description = "Lines of \"user:ssh-ed25519 AAAA... comment\" for the instance's ssh-keys metadata."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for line in var.ssh_keys :
      can(regex("^[a-z_][-a-z0-9_.]{0,31}:(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( [^\\n]*)?$", line))
    ])
    error_message = "Each SSH key must be one line: user:type base64-key [comment]."
  }
}

variable "startup_script" {
  description = "Startup script rendered by vm-creator from allow-listed recipes (bash or PowerShell)."
  type        = string
  default     = ""

  validation {
    condition     = length(var.startup_script) <= 262144
    error_message = "The startup script must be at most 256 KiB (the metadata limit)."
  }
}

variable "gpu_type" {
  description = "Accelerator type to attach, e.g. nvidia-tesla-t4; empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.gpu_type == "" || can(regex("^nvidia-[-a-z0-9]+$", var.gpu_type))
    error_message = "The GPU type must be empty or an accelerator type such as nvidia-tesla-t4."
  }
}

variable "gpu_count" {
  description = "How many GPUs of gpu_type to attach."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1, 2, 4, 8, 16], var.gpu_count)
    error_message = "The GPU count must be 0, 1, 2, 4, 8 or 16."
  }
}

variable "spot" {
  description = "Run as a Spot VM: cheaper, and Compute Engine may reclaim it at any time."
  type        = bool
  default     = false
}

variable "max_run_hours" {
  description = "TTL backstop: Compute Engine deletes the VM after this many hours of running; 0 for none."
  type        = number
  default     = 0

  validation {
    condition     = var.max_run_hours == 0 || (var.max_run_hours * 3600 >= 30 && var.max_run_hours <= 2880)
    error_message = "The maximum run time must be 0 (none) or from 30 seconds to 120 days (2880 hours)."
  }
}

variable "source_ranges" {
  description = "CIDR ranges allowed to reach SSH (Linux) or RDP (Windows). Default: Google's IAP range."
  type        = list(string)
  default     = ["35.235.240.0/20"]

  validation {
    condition     = length(var.source_ranges) > 0 && alltrue([for cidr in var.source_ranges : can(cidrhost(cidr, 0))])
    error_message = "Source ranges must be a non-empty list of CIDR blocks such as 35.235.240.0/20."
  }

  validation {
    condition     = !contains(var.source_ranges, "0.0.0.0/0")
    error_message = "Opening SSH or RDP to the whole internet (0.0.0.0/0) is not allowed; use IAP or a narrower range."
  }
}

variable "desired_status" {
  description = "RUNNING or TERMINATED (stopped); vm-creator re-applies with TERMINATED to stop the VM."
  type        = string
  default     = "RUNNING"

  validation {
    condition     = contains(["RUNNING", "TERMINATED"], var.desired_status)
    error_message = "The desired status must be RUNNING or TERMINATED."
  }
}
