//! The vhost-user back-end request handler: applies the front-end's messages (decoded by the
//! `vhost` crate's `BackendReqHandler`) to the device state.
//!
//! Ring life cycle (vhost-user spec, "Starting and stopping rings"): a ring starts when it has a
//! kick fd (`SET_VRING_KICK`) and is enabled, and stops on `GET_VRING_BASE`. With
//! PROTOCOL_FEATURES negotiated rings start disabled and follow `SET_VRING_ENABLE`; without it
//! they are enabled from the start.
//!
//! Protocol features offered: MQ, REPLY_ACK (implemented by the `vhost` crate), CONFIG (the
//! virtio-net config space: MAC if configured, link status, queue pairs, MTU),
//! CONFIGURE_MEM_SLOTS (`ADD_MEM_REG`/`REM_MEM_REG`). Not offered: LOG_SHMFD (no dirty logging,
//! so no live migration), INFLIGHT_SHMFD, BACKEND_REQ, STATUS, NET_MTU/RARP messages.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use vhost::VhostUserMemoryRegionBase;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{Error, GpuBackend, Result, VhostUserBackendReqHandlerMut};

use crate::device::{Shared, Vring, VringAddrs};
use crate::memory::{MAX_REGIONS, MemoryError, MemoryTable, RegionDesc};
use crate::ring::MAX_RING_SIZE;
use crate::virtio_net;

/// Device settings the front-end can read.
#[derive(Clone, Copy, Debug)]
pub struct DeviceConfig {
    pub max_queue_pairs: usize,
    pub mtu: u16,
    pub mac: Option<[u8; 6]>,
    /// Offer the checksum offloads.
    pub offloads: bool,
}

/// The control thread's view of the device.
pub struct Protocol {
    shared: Arc<Shared>,
    config: DeviceConfig,
    memory: MemoryTable,
    features: u64,
    protocol_features: u64,
}

fn offered_protocol_features() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::CONFIG
        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
}

fn refused(msg: impl Into<String>) -> Error {
    Error::ReqHandlerError(std::io::Error::other(msg.into()))
}

impl From<MemoryError> for Error {
    fn from(e: MemoryError) -> Error {
        refused(e.to_string())
    }
}

impl Protocol {
    pub fn new(shared: Arc<Shared>, config: DeviceConfig) -> Protocol {
        Protocol {
            shared,
            config,
            memory: MemoryTable::default(),
            features: 0,
            protocol_features: 0,
        }
    }

    /// Whether the front-end has acknowledged PROTOCOL_FEATURES with SET_FEATURES (the
    /// `vhost` crate refuses SET_VRING_ENABLE until then).
    pub fn protocol_features_acked(&self) -> bool {
        virtio_net::has_protocol_features(self.features)
    }

    /// Whether REPLY_ACK was negotiated with SET_PROTOCOL_FEATURES.
    pub fn reply_ack(&self) -> bool {
        self.protocol_features & VhostUserProtocolFeatures::REPLY_ACK.bits() != 0
    }

    fn offered_features(&self) -> u64 {
        let mac = if self.config.mac.is_some() {
            virtio_net::MAC_FEATURE
        } else {
            0
        };
        let offloads = if self.config.offloads {
            virtio_net::CSUM_FEATURES
        } else {
            0
        };
        virtio_net::OFFERED_FEATURES | mac | offloads
    }

    /// Forgets everything the front-end set up (its connection is gone, or `RESET_OWNER`).
    pub fn reset(&mut self) {
        for slot in self.shared.vrings.iter() {
            slot.lock().reset();
        }
        self.memory = MemoryTable::default();
        self.features = 0;
        self.protocol_features = 0;
        self.shared.features.store(0, Ordering::Relaxed);
        self.shared.protocol_features.store(0, Ordering::Relaxed);
        self.shared.mem_regions.store(0, Ordering::Relaxed);
        self.shared.update_tx_pairs();
    }

    /// Applies `f` to virtqueue `index` and restarts it if it can run.
    fn update_vring(&mut self, index: u32, f: impl FnOnce(&mut Vring) -> Result<()>) -> Result<()> {
        let slot = self
            .shared
            .vrings
            .get(index as usize)
            .ok_or(Error::InvalidParam)?;
        let res = {
            let mut vring = slot.lock();
            let res = f(&mut vring);
            vring.refresh(&self.memory, self.features);
            res
        };
        self.shared.update_tx_pairs();
        res
    }

    /// Installs a new memory table and restarts the running rings over it.
    fn set_memory(&mut self, memory: MemoryTable) {
        self.memory = memory;
        self.shared
            .mem_regions
            .store(self.memory.len(), Ordering::Relaxed);
        for slot in self.shared.vrings.iter() {
            slot.lock().refresh(&self.memory, self.features);
        }
        self.shared.update_tx_pairs();
    }
}

fn region_desc(r: &VhostUserMemoryRegion) -> RegionDesc {
    RegionDesc {
        guest_phys_addr: r.guest_phys_addr,
        memory_size: r.memory_size,
        user_addr: r.user_addr,
        mmap_offset: r.mmap_offset,
    }
}

impl VhostUserBackendReqHandlerMut for Protocol {
    fn set_owner(&mut self) -> Result<()> {
        tracing::trace!("vhost-user set_owner");
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        tracing::trace!("vhost-user reset_owner");
        self.reset();
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }

    fn get_features(&mut self) -> Result<u64> {
        tracing::trace!("vhost-user get_features");
        Ok(self.offered_features())
    }

    fn set_features(&mut self, features: u64) -> Result<()> {
        tracing::trace!(
            features = format_args!("{features:#x}"),
            "vhost-user set_features"
        );
        if features & !self.offered_features() != 0 {
            return Err(refused(format!("features {features:#x} were not offered")));
        }
        self.features = features;
        self.shared.features.store(features, Ordering::Relaxed);
        let enable_all = !virtio_net::has_protocol_features(features);
        for slot in self.shared.vrings.iter() {
            let mut vring = slot.lock();
            if enable_all {
                vring.enabled = true;
            }
            vring.refresh(&self.memory, features);
        }
        self.shared.update_tx_pairs();
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy_listening: Option<bool>,
    ) -> Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        tracing::trace!("vhost-user set_mem_table");
        let descs: Vec<RegionDesc> = ctx.iter().map(region_desc).collect();
        let memory = MemoryTable::from_regions(&descs, files).inspect_err(|e| {
            tracing::warn!("vhost-user memory table refused: {e}");
        })?;
        self.set_memory(memory);
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        tracing::trace!(index, num, "vhost-user set_vring_num");
        if num == 0 || num > u32::from(MAX_RING_SIZE) || !num.is_power_of_two() {
            return Err(refused(format!("invalid ring size {num}")));
        }
        self.update_vring(index, |v| {
            v.num = num as u16;
            v.broken = None;
            Ok(())
        })
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> Result<()> {
        tracing::trace!("vhost-user set_vring_addr");
        self.update_vring(index, |v| {
            v.addrs = Some(VringAddrs {
                desc: descriptor,
                used,
                avail: available,
            });
            v.broken = None;
            Ok(())
        })
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        tracing::trace!(index, base, "vhost-user set_vring_base");
        let base = u16::try_from(base).map_err(|_| refused(format!("invalid ring base {base}")))?;
        self.update_vring(index, |v| {
            v.base = base;
            Ok(())
        })
    }

    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        tracing::trace!(index, "vhost-user get_vring_base");
        let slot = self
            .shared
            .vrings
            .get(index as usize)
            .ok_or(Error::InvalidParam)?;
        let base = {
            let mut vring = slot.lock();
            vring.stop();
            vring.started = false;
            vring.kick = None;
            vring.broken = None;
            vring.base
        };
        self.shared.update_tx_pairs();
        Ok(VhostUserVringState::new(index, u32::from(base)))
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        tracing::trace!(index, "vhost-user set_vring_kick");
        // The port polls; the kick fd is kept open (the front-end expects that) but never read.
        self.update_vring(u32::from(index), |v| {
            v.kick = fd;
            v.started = true;
            v.broken = None;
            Ok(())
        })
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        self.update_vring(u32::from(index), |v| {
            v.call = fd;
            Ok(())
        })
    }

    fn set_vring_err(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        self.update_vring(u32::from(index), |v| {
            v.err = fd;
            Ok(())
        })
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        Ok(offered_protocol_features())
    }

    fn set_protocol_features(&mut self, features: u64) -> Result<()> {
        tracing::trace!(
            features = format_args!("{features:#x}"),
            "vhost-user set_protocol_features"
        );
        if features & !offered_protocol_features().bits() != 0 {
            return Err(refused(format!(
                "protocol features {features:#x} were not offered"
            )));
        }
        self.protocol_features = features;
        self.shared
            .protocol_features
            .store(features, Ordering::Relaxed);
        Ok(())
    }

    fn get_queue_num(&mut self) -> Result<u64> {
        Ok(self.config.max_queue_pairs as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        self.update_vring(index, |v| {
            v.enabled = enable;
            Ok(())
        })
    }

    fn get_config(
        &mut self,
        offset: u32,
        size: u32,
        _flags: VhostUserConfigFlags,
    ) -> Result<Vec<u8>> {
        let space = virtio_net::config_space(
            self.config.mac.unwrap_or_default(),
            self.config.max_queue_pairs as u16,
            self.config.mtu,
        );
        let (start, len) = (offset as usize, size as usize);
        let end = start.checked_add(len).filter(|&e| e <= space.len());
        let Some(end) = end else {
            return Err(refused(format!("config read {offset}+{size} out of range")));
        };
        if self.config.mac.is_none() && start < 6 {
            // No MAC configured: let the front-end pick its own.
            return Err(refused("no MAC address configured"));
        }
        Ok(space[start..end].to_vec())
    }

    fn set_config(
        &mut self,
        _offset: u32,
        _buf: &[u8],
        _flags: VhostUserConfigFlags,
    ) -> Result<()> {
        Err(refused("the config space is read-only"))
    }

    fn set_gpu_socket(&mut self, _gpu_backend: GpuBackend) -> Result<()> {
        Err(refused("not a GPU device"))
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> Result<File> {
        Err(refused("shared objects are not supported"))
    }

    fn get_inflight_fd(
        &mut self,
        _inflight: &VhostUserInflight,
    ) -> Result<(VhostUserInflight, File)> {
        Err(refused("inflight tracking is not supported"))
    }

    fn set_inflight_fd(&mut self, _inflight: &VhostUserInflight, _file: File) -> Result<()> {
        Err(refused("inflight tracking is not supported"))
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        Ok(MAX_REGIONS as u64)
    }

    fn add_mem_region(
        &mut self,
        region: &VhostUserSingleMemoryRegion,
        fd: File,
        _postcopy_listening: Option<bool>,
    ) -> Result<Option<VhostUserMemoryRegionBase>> {
        let memory = self
            .memory
            .with_region(region_desc(region), fd)
            .inspect_err(|e| {
                tracing::warn!("vhost-user memory region refused: {e}");
            })?;
        self.set_memory(memory);
        Ok(None)
    }

    fn remove_mem_region(&mut self, region: &VhostUserSingleMemoryRegion) -> Result<()> {
        let memory = self
            .memory
            .without_region(region.guest_phys_addr, region.memory_size)?;
        self.set_memory(memory);
        Ok(())
    }

    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> Result<Option<File>> {
        Err(refused("device state transfer is not supported"))
    }

    fn check_device_state(&mut self) -> Result<()> {
        Err(refused("device state transfer is not supported"))
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        Err(refused("no shared memory regions"))
    }

    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> Result<()> {
        Err(refused("dirty logging is not supported"))
    }
}
