"""Recognition service: sliding windows per student (faust table state) -> MST-GCN -> behaviour events."""
