"""dmil_ros.model."""
