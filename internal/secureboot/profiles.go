package secureboot

import (
	"fmt"
	"strings"
)

// ProfileCAs returns the known-CA IDs (authenticode.KnownCAs) a firmware
// profile puts in db and in KEK: microsoft-2011 the Windows Production PCA
// 2011 and the Microsoft Corporation UEFI CA 2011 in db and the KEK CA 2011;
// microsoft-2023 the Windows UEFI CA 2023, the Microsoft UEFI CA 2023 and the
// Option ROM UEFI CA 2023 in db and the KEK 2K CA 2023; microsoft-both all of
// them. The slices are the caller's.
func ProfileCAs(name string) (db, kek []string, err error) {
	switch name {
	case ProfileMicrosoft2011:
		db, kek = profileDB2011, profileKEK2011
	case ProfileMicrosoft2023:
		db, kek = profileDB2023, profileKEK2023
	case ProfileMicrosoftBoth:
		db = append(append([]string{}, profileDB2011...), profileDB2023...)
		kek = append(append([]string{}, profileKEK2011...), profileKEK2023...)
	default:
		return nil, nil, fmt.Errorf("secureboot: unknown firmware profile %q (want %s)", name, strings.Join(Profiles(), ", "))
	}
	return append([]string{}, db...), append([]string{}, kek...), nil
}
