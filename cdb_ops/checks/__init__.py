"""Looking without changing: probes, validate's checks, log scanning, doctor's diagnoses."""
