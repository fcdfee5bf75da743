package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/mtls-demo/mtls-webhook/pkg/mutate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
)

// CSIDriverName is the only CSI driver the agent talks to.
const CSIDriverName = mutate.Driver

// csiClient is the kubelet's side of the CSI node service.
type csiClient struct {
	conn *grpc.ClientConn
	node csi.NodeClient
}

func dialCSI(socket string) (*csiClient, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &csiClient{conn: conn, node: csi.NewNodeClient(conn)}, nil
}

func (c *csiClient) Close() error { return c.conn.Close() }

// volumeID is stable per pod and volume, like the kubelet's csi-<hash>.
func volumeID(pod *corev1.Pod, volume string) string {
	h := sha256.Sum256([]byte(string(pod.UID) + "/" + volume))
	return "csi-" + hex.EncodeToString(h[:])[:40]
}

// publish is NodePublishVolume exactly as the kubelet sends it for an
// inline (ephemeral) CSI volume.
func (c *csiClient) publish(ctx context.Context, pod *corev1.Pod, vol corev1.Volume, target string) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	attrs := map[string]string{}
	for k, v := range vol.CSI.VolumeAttributes {
		attrs[k] = v
	}
	attrs["csi.storage.k8s.io/ephemeral"] = "true"
	attrs["csi.storage.k8s.io/pod.name"] = pod.Name
	attrs["csi.storage.k8s.io/pod.namespace"] = pod.Namespace
	attrs["csi.storage.k8s.io/pod.uid"] = string(pod.UID)
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	attrs["csi.storage.k8s.io/serviceAccount.name"] = sa
	readOnly := vol.CSI.ReadOnly != nil && *vol.CSI.ReadOnly // unset means false, as for a kubelet
	_, err := c.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   volumeID(pod, vol.Name),
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			// A kubelet hands the pod's fsGroup to drivers that, like this
			// one, advertise VOLUME_MOUNT_GROUP.
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{VolumeMountGroup: volumeMountGroup(pod)}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly:      readOnly,
		VolumeContext: attrs,
	})
	if err != nil {
		return fmt.Errorf("NodePublishVolume %s: %w", vol.Name, err)
	}
	return nil
}

func (c *csiClient) unpublish(ctx context.Context, id, target string) error {
	_, err := c.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

func volumeMountGroup(pod *corev1.Pod) string {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		return strconv.FormatInt(*sc.FSGroup, 10)
	}
	return ""
}
