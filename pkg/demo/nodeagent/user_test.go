package nodeagent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestContainerUserIsWhoAKubeletWouldRunItAs(t *testing.T) {
	id := func(v int64) *int64 { return &v }
	tests := map[string]struct {
		pod  *corev1.PodSecurityContext
		ctr  *corev1.SecurityContext
		want User
	}{
		"nothing said: the demo images' USER": {
			want: User{UID: ImageUser, GID: uint32(ImageGroup)},
		},
		"the pod's user and group, fsGroup and supplementalGroups as extra groups": {
			pod:  &corev1.PodSecurityContext{RunAsUser: id(1000), RunAsGroup: id(2000), FSGroup: id(3000), SupplementalGroups: []int64{4000}},
			want: User{UID: 1000, GID: 2000, Groups: []uint32{3000, 4000}},
		},
		"a container's own user and group win over the pod's": {
			pod:  &corev1.PodSecurityContext{RunAsUser: id(1000), RunAsGroup: id(2000)},
			ctr:  &corev1.SecurityContext{RunAsUser: id(1001), RunAsGroup: id(2001)},
			want: User{UID: 1001, GID: 2001},
		},
		"runAsUser 0 is root, as asked": {
			ctr:  &corev1.SecurityContext{RunAsUser: id(0)},
			want: User{UID: 0, GID: uint32(ImageGroup)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: tc.pod}}
			got := containerUser(pod, corev1.Container{Name: "app", SecurityContext: tc.ctr})
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
