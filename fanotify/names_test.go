package fanotify

import "testing"

func TestFlagNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{GroupFlagNames(0x200), "FAN_CLASS_NOTIF|FAN_REPORT_FID"},
		{GroupFlagNames(0x4 | 0x20 | 0x10), "FAN_CLASS_CONTENT|FAN_UNLIMITED_QUEUE|FAN_UNLIMITED_MARKS"},
		{GroupFlagNames(0x8 | 0x80000), "FAN_CLASS_PRE_CONTENT|0x80000"},
		{GroupClass(0x0c), "0xc"},
		{FanotifyMaskNames(0x8000002), "FAN_MODIFY|FAN_EVENT_ON_CHILD"},
		{FanotifyMaskNames(0), ""},
		{MarkFlagNames(0x640), "FAN_MARK_IGNORED_SURV_MODIFY|FAN_MARK_EVICTABLE|FAN_MARK_IGNORE"},
		{InotifyMaskNames(0x84000100), "IN_CREATE|IN_EXCL_UNLINK|IN_ONESHOT"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
