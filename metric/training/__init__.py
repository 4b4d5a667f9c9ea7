"""What the LightningModules use while training: fine-tuning settings, DDP gathering, teachers, optimizer wiring."""
