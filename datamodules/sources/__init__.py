"""The concrete datasets, each parsing its official layout: folder, CelebA, K-Face, 10K US Adult Faces, and the
embedded synthetic faces."""
