package failpoint

import "strings"

// KillMarker is text of the message a failpoint prints before it kills: only
// a binary built with failpoints contains it.
var KillMarker = strings.TrimSuffix(killMessage, " the process\n")

// IgnoredMarker is text of the warning a build without failpoints prints
// when HOMEROOM_FAILPOINT is set.
var IgnoredMarker = "ignored: this build has no failpoints"

func init() {
	if KillMarker == killMessage || !strings.Contains(ignoredMessage, IgnoredMarker) {
		panic("the markers are not text of the messages")
	}
}
