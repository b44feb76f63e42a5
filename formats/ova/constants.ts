// OVF / OVA constants (DMTF DSP0243; see ../shared/reference/ovf-ova.md).

export const OVF_NAMESPACE_1 = 'http://schemas.dmtf.org/ovf/envelope/1';
export const OVF_NAMESPACE_2 = 'http://schemas.dmtf.org/ovf/envelope/2';
/** OVF 0.9 (VMware's pre-standard envelope): refused. */
export const OVF_NAMESPACE_09 = 'http://www.vmware.com/schema/ovf/1/envelope';
export const RASD_NAMESPACE = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData';
export const VSSD_NAMESPACE = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData';

export const STREAM_OPTIMIZED_URI = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

export const TAR_BLOCK = 512;
/** An .ovf is KBs to a few MB (VirtualBox embeds the whole machine config); a manifest is KBs. */
export const MAX_OVF_BYTES = 16 * 1024 * 1024;
export const MAX_MANIFEST_BYTES = 1024 * 1024;
/** Real packages have a handful of members; past this the archive is refused. */
export const MAX_MEMBERS = 10_000;
/** A pax or GNU long-name header's data is a few hundred bytes. */
export const MAX_META_BYTES = 1024 * 1024;
/** rasd:ResourceType of a hard disk. */
export const RESOURCE_TYPE_DISK = '17';
