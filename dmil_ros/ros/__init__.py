"""dmil_ros.ros."""
