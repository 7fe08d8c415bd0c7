"""dmil_ros.runtime."""
