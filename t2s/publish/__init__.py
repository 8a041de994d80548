"""What a trained adapter leaves behind: its run record, its model card, an exported merged model, a Hub upload."""
