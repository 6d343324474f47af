package disk

import "strings"

// Partition type GUIDs that matter to vouch, from the UEFI spec (§5.3.3) and the
// Discoverable Partitions Specification (uapi-group.org).
const (
	TypeESP          = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeLinuxData    = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeRootX86_64   = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeRootAArch64  = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	TypeRootX86      = "44479540-F297-41B2-9AF7-D131D5F0458A"
	TypeRootARM      = "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3"
	TypeRootRISCV64  = "72EC70A6-CF74-40E6-BD49-4BDA08E8F224"
	TypeLinuxSwap    = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
	TypeLinuxLVM     = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
	TypeBIOSBoot     = "21686148-6449-6E6F-744E-656564454649"
	TypeXBOOTLDR     = "BC13C2FF-59E6-4262-A352-B275FD6F7172"
	TypeLinuxLUKS    = "CA7D7CCB-63ED-4C53-861C-1742536059CC"
	TypeLinuxRAID    = "A19D880F-05FC-4D3B-A006-743F0F84911E"
	TypeMicrosoftBDP = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
)

var gptTypeNames = map[string]string{
	TypeESP:                                "EFI System",
	TypeLinuxData:                          "Linux filesystem",
	TypeRootX86_64:                         "Linux root (x86-64)",
	TypeRootAArch64:                        "Linux root (ARM64)",
	TypeRootX86:                            "Linux root (x86)",
	TypeRootARM:                            "Linux root (ARM)",
	TypeRootRISCV64:                        "Linux root (RISC-V 64)",
	"8484680C-9521-48C6-9C11-B0720656F69E": "Linux /usr (x86-64)",
	"B0E01050-EE5F-4390-949A-9101B17104E9": "Linux /usr (ARM64)",
	TypeLinuxSwap:                          "Linux swap",
	TypeLinuxLVM:                           "Linux LVM",
	TypeLinuxLUKS:                          "Linux LUKS",
	TypeLinuxRAID:                          "Linux RAID",
	"933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux /home",
	"3B8F8425-20E0-4F3B-907F-1A25A76F98E8": "Linux /srv",
	"4D21B016-B534-45C2-A9FB-5C16E091FD2D": "Linux /var",
	"7EC6F557-3BC5-4ACA-B293-16EF5DF639D1": "Linux /var/tmp",
	"2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5": "Linux root verity (x86-64)",
	TypeXBOOTLDR:                           "Linux extended boot",
	TypeBIOSBoot:                           "BIOS boot",
	TypeMicrosoftBDP:                       "Microsoft basic data",
	"E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
	"DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows recovery",
	"9E1A2D38-C612-4316-AA26-8B49521E5A8B": "PowerPC PReP boot",
}

// GPTTypeName names a GPT partition type GUID, or "unknown".
func GPTTypeName(guid string) string {
	if n, ok := gptTypeNames[strings.ToUpper(guid)]; ok {
		return n
	}
	return "unknown"
}

// IsRootType reports whether guid is a Discoverable Partitions root type.
func IsRootType(guid string) bool {
	switch strings.ToUpper(guid) {
	case TypeRootX86_64, TypeRootAArch64, TypeRootX86, TypeRootARM, TypeRootRISCV64:
		return true
	}
	return false
}

var mbrTypeNames = map[byte]string{
	0x01: "FAT12", 0x04: "FAT16 <32M", 0x05: "Extended", 0x06: "FAT16",
	0x07: "HPFS/NTFS/exFAT", 0x0b: "W95 FAT32", 0x0c: "W95 FAT32 (LBA)",
	0x0e: "W95 FAT16 (LBA)", 0x0f: "W95 Extended (LBA)", 0x82: "Linux swap",
	0x83: "Linux", 0x85: "Linux extended", 0x8e: "Linux LVM", 0xee: "GPT protective",
	0xef: "EFI System", 0xfd: "Linux raid autodetect",
}

// MBRTypeName names an MBR partition type byte, or "unknown".
func MBRTypeName(t byte) string {
	if n, ok := mbrTypeNames[t]; ok {
		return n
	}
	return "unknown"
}

// IsESP reports whether p's type marks it as an EFI System Partition.
func (p Partition) IsESP() bool {
	return strings.EqualFold(p.Type, TypeESP) || p.Type == "0xef"
}
