"""dmil_ros.pid."""
