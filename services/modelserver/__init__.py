"""Model server: DCA-Net + keypoints and MST-GCN behind gRPC, batching requests across classrooms."""
