"""hwbot: book Hello Work online job consultations over LINE."""
