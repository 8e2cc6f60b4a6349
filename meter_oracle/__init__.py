"""Meter oracle: read real meters (DSMR P1, SML, Modbus/SunSpec), check and sign every reading,
keep it in a durable outbox and deliver it to every settlement node until acknowledged.

Data flow: transport -> framer -> protocol parser (MeterFrame) -> checks -> signing -> outbox
-> delivery. Simulators in meter_oracle.simulators serve the same protocol bytes as hardware.
"""
