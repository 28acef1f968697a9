"""The fault harness: many orders through the real processes while they are killed and faulted."""
